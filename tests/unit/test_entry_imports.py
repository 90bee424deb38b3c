"""What each command's process imports: `vegd apply` reads manifests and writes NB, so it never
loads the Kubernetes client (17 MB of RSS and 0.2 s at every start, pydantic and requests with
it)."""

from __future__ import annotations

import json
import subprocess
import sys

CLIENT_LIBRARIES = ("kubernetes", "pydantic", "requests", "urllib3")


def test_vegd_apply_never_imports_the_kubernetes_client():
    code = ("import json, sys\n"
            "from vegd import cli\n"
            "cli._parser().parse_args(['apply', '-f', '.'])\n"
            "import vegd.apply\n"
            "loaded = {m.split('.')[0] for m in sys.modules}\n"
            f"print(json.dumps(sorted(loaded & {set(CLIENT_LIBRARIES)!r})))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert json.loads(out.stdout) == [], out.stderr
