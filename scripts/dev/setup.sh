#!/usr/bin/env bash
# Installs what ofaserve needs, idempotently and quietly, from Debian's apt, the Go module proxy and the npm
# registry (nothing else is reachable or needed).
#
# Usage: scripts/dev/setup.sh [run|test|proto]
#   run    what `make run` needs: libtorch + a C++ toolchain for the shim, TurboJPEG, PyTorch for the exporter,
#          matplotlib's sample photos (the first request's image), the Go modules.
#   test   run's set plus what only the tests use: torchvision, PIL, pytest, scikit-image and aiohttp (Python
#          references and the Python baseline), staticcheck and grpcurl, and the npm tokenizer reference.
#   proto  test's set plus protoc and its Go plugins (`make proto`).
set -euo pipefail
cd "$(dirname "$0")/../.."
MODE="${1:-test}"

RUN_APT=(libtorch-dev python3-torch python3-numpy python3-regex cmake g++ pkg-config make libturbojpeg0-dev
         python-matplotlib-data curl)
TEST_APT=(python3-torchvision python3-pil python3-pytest python3-skimage python3-aiohttp nodejs npm)
PROTO_APT=(protobuf-compiler)

case "$MODE" in
  run)   APT_PKGS=("${RUN_APT[@]}") ;;
  test)  APT_PKGS=("${RUN_APT[@]}" "${TEST_APT[@]}") ;;
  proto) APT_PKGS=("${RUN_APT[@]}" "${TEST_APT[@]}" "${PROTO_APT[@]}") ;;
  *) echo "setup: unknown mode '$MODE' (run, test or proto)" >&2; exit 2 ;;
esac

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
missing=()
for p in "${APT_PKGS[@]}"; do
  # npm may come with a nodejs build that bundles it (NodeSource): then the command is enough.
  if [ "$p" = npm ] && command -v npm >/dev/null; then continue; fi
  if [ "$p" = nodejs ] && command -v node >/dev/null; then continue; fi
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup ($MODE): installing apt packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

go mod download
[ "$MODE" = run ] && exit 0

gobin="$(go env GOPATH)/bin"
install_go_tool() { # name module@version
  [ -x "$gobin/$1" ] || { echo "setup: go install $2"; go install "$2"; }
}
install_go_tool staticcheck honnef.co/go/tools/cmd/staticcheck@v0.8.2
install_go_tool grpcurl github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4
if [ "$MODE" = proto ]; then
  install_go_tool protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
  install_go_tool protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
fi

# npm: an independent GPT-2 BPE implementation, the tokenizer reference of preprocess/bpe's tests.
if [ ! -d preprocess/bpe/testdata/node_modules/gpt-3-encoder ]; then
  echo "setup: npm install (tokenizer reference)"
  (cd preprocess/bpe/testdata && npm install --silent --no-audit --no-fund >/dev/null)
fi
exit 0
