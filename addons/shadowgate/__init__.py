"""shadowgate: mitmproxy addons that discover, meter and control AI traffic on a forward proxy.

Every request takes one path, and the package is laid out along it:

    stages/      the mitmproxy addons, in pipeline order (default_addons())
                 identify -> decide -> act -> record
    config/      the YAML files (catalog, policy, attribution map) as typed, validated objects
    wireformats/ the only place that knows a wire format: parsing, prompt text, errors, framing
    enforce/     what Act uses: budgets and the like
    dlp/         the detectors: secrets and personal data
    storage/     the row schema, the writer, pricing
    telemetry/   OpenTelemetry GenAI semantic conventions
    report/      the weekly report (its SQL lives in reports/*.sql)
    cli/         the `shadowgate` command
    demo/        fake providers and the one-minute demo
"""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("shadowgate-proxy")
except metadata.PackageNotFoundError:  # a checkout that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
