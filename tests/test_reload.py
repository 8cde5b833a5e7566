"""mitmproxy re-runs an edited -s script; shadowgate keeps the settings it was started with."""

from __future__ import annotations

import shutil
import time

from tests.conftest import ROOT

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def test_editing_the_entry_script_keeps_database_and_policy(fresh_proxy, tmp_path):
    # A copy of the entry script, so touching it reloads only this proxy. Not named shadowgate.py:
    # beside no package of that name, `import shadowgate` would find the script itself.
    entry = tmp_path / "entry" / "load_shadowgate.py"
    entry.parent.mkdir()
    shutil.copy(ROOT / "addons" / "shadowgate.py", entry)
    policy = tmp_path / "policy.yaml"
    policy.write_text("rules:\n  - id: no-deepseek\n    match: {provider: deepseek}\n    action: block\n")
    proxy = fresh_proxy("--set", f"shadowgate_policy={policy}", entry=entry)

    def call(user: str, host: str = "api.openai.com") -> int:
        with proxy.client(user) as client:
            return client.post(f"https://{host}/v1/chat/completions", json=BODY).status_code

    assert call("before") == 200
    entry.write_text(entry.read_text() + "\n# edited while running\n")
    deadline = time.monotonic() + 15
    while proxy.log().count("shadowgate: recording to") < 2:  # the reloaded script's writer
        assert time.monotonic() < deadline, proxy.log()
        time.sleep(0.2)
    assert call("after") == 200
    assert call("after_blocked", "api.deepseek.com") == 403  # the policy is still in force
    assert len(proxy.rows("user_name IN ('before', 'after', 'after_blocked')", expect=3)) == 3
