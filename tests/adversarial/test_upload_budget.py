"""An ordinary fine-tuning upload is not refused by the DLP clock (red-team F81).

A JSONL file of 500 chat examples, each with a flag emoji (tag characters, escaped by json.dumps),
is 115 KB of thousands of short strings: ~0.3 s of scanning, over the fixed 250 ms budget, so
it was refused as "the scan ran out of time". An upload's budget now grows with its size (5 µs a
byte), still linear; a key in such a file is still found.
"""

from __future__ import annotations

import json

from tests.adversarial.calls import post_marked
from tests.adversarial.calls import reached

FLAG = "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f"  # England


def _fine_tuning_file(extra: str = "") -> tuple[bytes, str]:
    lines = [
        json.dumps(
            {"messages": [{"role": "user", "content": f"Q{i} {FLAG}"}, {"role": "assistant", "content": f"A{i}"}]}
        )
        for i in range(500)
    ]
    text = "\n".join(lines) + extra
    body = (
        '--b\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n'
        '--b\r\nContent-Disposition: form-data; name="file"; filename="train.jsonl"\r\n\r\n' + text + "\r\n--b--\r\n"
    )
    return body.encode(), "multipart/form-data; boundary=b"


def test_a_large_fine_tuning_file_is_scanned_not_refused(proxy_with, upstream):
    proxy = proxy_with("dlp: {secrets: block, pii: log}\n")
    body, content_type = _fine_tuning_file()
    answer, mark = post_marked(proxy, "ft-upload", body, "https://api.openai.com/v1/files", content_type)
    assert answer.status_code == 200, answer.text[:200]
    assert reached(upstream, mark)
    body, content_type = _fine_tuning_file('\n{"messages": [{"role": "user", "content": "key AKIA2OGYBAH6STMMNXNN"}]}')
    answer, mark = post_marked(proxy, "ft-upload-key", body, "https://api.openai.com/v1/files", content_type)
    assert answer.status_code == 403 and "AWS_ACCESS_KEY" in answer.text, answer.text[:200]
    assert not reached(upstream, mark)
