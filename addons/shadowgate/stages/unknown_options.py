"""Stop start-up when an option that no addon declares was set: `--set shadowgate_polcy=...`.

mitmproxy keeps an unknown `--set` name (or config.yaml key) aside in case a script loaded later
declares it, and never complains when none does: a typo in the policy option then starts a proxy
that enforces nothing. A shadowgate_* name is refused as soon as the options are applied (under
`shadowgate proxy`, before the proxy listens); any other name once the running hooks fire, when
every script has declared its options, and mitmproxy's ErrorCheck turns that error into exit
status 1. (`mitmdump -s` loads its scripts only after the servers are up, so there the stop comes
right after "listening".)
"""

from __future__ import annotations

import asyncio
import difflib
import logging

from mitmproxy import ctx
from mitmproxy import exceptions

PREFIX = "shadowgate_"

logger = logging.getLogger(__name__)


class UnknownOptions:
    def configure(self, updated: set[str]) -> None:
        # Every shadowgate_* option is declared by the addons that are loading now, so a deferred
        # one is a typo already (deferred is almost always empty: this costs nothing). Raised here,
        # `shadowgate proxy` prints this one line and exits before it listens, and an edited
        # config.yaml with a typo is refused while the proxy keeps its options.
        if ours := [m for name, m in self._messages() if name.startswith(PREFIX)]:
            raise exceptions.OptionsError("; ".join(ours))

    def running(self) -> None:
        # Other -s scripts may declare the rest; they are loaded by now, or on the next turn of
        # the loop. ErrorCheck looks again right after the running hooks.
        asyncio.get_running_loop().call_soon(self.check)

    def check(self) -> list[str]:
        """Log every option still unknown once all scripts are loaded; ErrorCheck then stops start-up."""
        messages = [message for _, message in self._messages()]
        for message in messages:
            logger.error(message)
        return messages

    def _messages(self) -> list[tuple[str, str]]:
        known = sorted(ctx.options.keys())
        found = []
        for name in sorted(ctx.options.deferred):
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            found.append((name, f"unknown option {name!r} (from --set or config.yaml): no addon declares it{hint}"))
        return found
