#!/usr/bin/env bash
# Regenerates the Go code of the gRPC API from api/offloadd/v1/*.proto.
#
# The Go plugins are the versions pinned as tools in go.mod (go tool
# protoc-gen-go, go tool protoc-gen-go-grpc); protoc is Debian's
# protobuf-compiler 3.21 with libprotobuf-dev for the well-known types,
# installed with apt-get when missing. Output is deterministic: running the
# script twice gives byte-identical files.
#
# Usage: hack/proto.sh          regenerate in place
#        hack/proto.sh --check  fail if the committed code is stale
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

want_protoc="3.21"
wkt=/usr/include/google/protobuf/timestamp.proto

if ! command -v protoc >/dev/null 2>&1 || [ ! -f "$wkt" ]; then
	echo "proto.sh: installing protobuf-compiler and libprotobuf-dev" >&2
	sudo=""
	if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
	$sudo apt-get update
	$sudo apt-get install -y protobuf-compiler libprotobuf-dev
fi

got="$(protoc --version | awk '{print $2}')"
case "$got" in
"$want_protoc".*) ;;
*)
	echo "proto.sh: protoc $got found, want $want_protoc.x (the version the committed code was generated with)" >&2
	exit 1
	;;
esac

gen_go="$(go tool -n protoc-gen-go)"
gen_grpc="$(go tool -n protoc-gen-go-grpc)"

out="$root/api"
if [ "${1:-}" = "--check" ]; then
	out="$(mktemp -d)"
	trap 'rm -rf "$out"' EXIT
	mkdir -p "$out/offloadd/v1"
fi

protos=()
while IFS= read -r f; do protos+=("${f#api/}"); done < <(find api/offloadd -name '*.proto' | LC_ALL=C sort)

protoc \
	--proto_path=api \
	--proto_path=/usr/include \
	--plugin=protoc-gen-go="$gen_go" \
	--plugin=protoc-gen-go-grpc="$gen_grpc" \
	--go_out="$out" --go_opt=paths=source_relative \
	--go-grpc_out="$out" --go-grpc_opt=paths=source_relative \
	"${protos[@]}"

if [ "${1:-}" = "--check" ]; then
	status=0
	for f in "$out"/offloadd/v1/*.go; do
		rel="api/offloadd/v1/$(basename "$f")"
		if ! cmp -s "$f" "$rel"; then
			echo "proto.sh: $rel is stale; run hack/proto.sh" >&2
			status=1
		fi
	done
	for f in api/offloadd/v1/*.pb.go; do
		if [ ! -f "$out/offloadd/v1/$(basename "$f")" ]; then
			echo "proto.sh: $f has no .proto source; remove it" >&2
			status=1
		fi
	done
	exit $status
fi
