#!/usr/bin/env bash
# Generates the Go code for every .proto under protocol/ (`make proto`).
# Imports are resolved from the repository root, so a proto that needs the
# model config writes:
#   import "protocol/modelconfig/model_config.proto";
# Files that declare a service also get gRPC stubs (protoc-gen-go-grpc makes
# nothing for files without one). Output lands next to each .proto.
set -euo pipefail
cd "$(dirname "$0")/../.."

export PATH="$(go env GOPATH)/bin:$PATH"
for tool in protoc protoc-gen-go protoc-gen-go-grpc; do
  command -v "$tool" >/dev/null || { echo "gen_proto: $tool not found (run make setup)" >&2; exit 1; }
done

mapfile -t protos < <(find protocol -name '*.proto' 2>/dev/null | sort)
if [ ${#protos[@]} -eq 0 ]; then
  echo "gen_proto: no .proto files" >&2
  exit 1
fi

protoc -I . \
  --go_out=. --go_opt=paths=source_relative \
  --go-grpc_out=. --go-grpc_opt=paths=source_relative \
  "${protos[@]}"
echo "gen_proto: generated ${protos[*]}"
