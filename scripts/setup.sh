#!/usr/bin/env bash
# Installs what ofaserve needs to build and test, idempotently and quietly.
# Sources: Debian's apt, the Go module proxy and the npm registry. Nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PKGS=(
  libtorch-dev python3-torch python3-torchvision python3-pil python3-numpy python3-pytest python3-regex
  cmake g++ pkg-config make libturbojpeg0-dev protobuf-compiler
  python-matplotlib-data python3-skimage python3-aiohttp
)

missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing apt packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

export PATH="$(go env GOPATH)/bin:$PATH"
gobin="$(go env GOPATH)/bin"
install_go_tool() { # name module@version
  [ -x "$gobin/$1" ] || { echo "setup: go install $2"; go install "$2"; }
}
install_go_tool staticcheck honnef.co/go/tools/cmd/staticcheck@v0.8.2
install_go_tool protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
install_go_tool protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
install_go_tool grpcurl github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4

go mod download

# npm: an independent GPT-2 BPE implementation used as a tokenizer reference in tests.
if [ -f preprocess/bpe/testdata/package.json ] && [ ! -d preprocess/bpe/testdata/node_modules/gpt-3-encoder ]; then
  if ! command -v npm >/dev/null; then # Debian splits npm out of nodejs
    echo "setup: installing nodejs and npm"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
  echo "setup: npm install (tokenizer reference)"
  (cd preprocess/bpe/testdata && npm install --silent --no-audit --no-fund >/dev/null)
fi
exit 0
