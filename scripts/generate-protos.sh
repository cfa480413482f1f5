#!/usr/bin/env bash
# Regenerates Sources/Wire/Generated/ from protos/ from scratch.
#
# - Installs protoc (Debian's protobuf-compiler) with apt when it is missing.
# - Builds the two code generators (protoc-gen-swift from swift-protobuf and protoc-gen-grpc-swift-2
#   from grpc-swift-protobuf) from the versions Package.swift resolves, once.
# - Deletes the generated folder and writes it again with the same options the
#   `generate-grpc-code-from-protos --access-level package` command plugin uses, so the output is
#   byte-for-byte repeatable: running the script twice gives no diff.
#
# Usage: scripts/generate-protos.sh   (from anywhere; SCRATCH_PATH overrides the build folder)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scratch=${SCRATCH_PATH:-.build}
out=Sources/Wire/Generated

if ! command -v protoc >/dev/null 2>&1; then
    echo "protoc not found: installing Debian's protobuf-compiler" >&2
    if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq protobuf-compiler >/dev/null
fi

echo "building the code generators (first run takes a few minutes)" >&2
swift build --scratch-path "$scratch" --product protoc-gen-swift >&2
swift build --scratch-path "$scratch" --product protoc-gen-grpc-swift-2 >&2
bin=$(swift build --scratch-path "$scratch" --show-bin-path)

rm -rf "$out"
mkdir -p "$out"
# Sorted so the invocation, and so the output, never depends on the file system's order.
mapfile -t protos < <(cd protos && find . -name '*.proto' | sed 's|^\./||' | LC_ALL=C sort)

(
    cd protos
    protoc \
        --plugin=protoc-gen-swift="$bin/protoc-gen-swift" \
        --swift_out="$root/$out" \
        --proto_path=. \
        --swift_opt=Visibility=Package \
        --swift_opt=FileNaming=FullPath \
        --swift_opt=UseAccessLevelOnImports=false \
        "${protos[@]}"
    protoc \
        --plugin=protoc-gen-grpc-swift="$bin/protoc-gen-grpc-swift-2" \
        --grpc-swift_out="$root/$out" \
        --proto_path=. \
        --grpc-swift_opt=Visibility=Package \
        --grpc-swift_opt=Server=true \
        --grpc-swift_opt=Client=true \
        --grpc-swift_opt=FileNaming=FullPath \
        --grpc-swift_opt=UseAccessLevelOnImports=false \
        "${protos[@]}"
)
echo "generated $(find "$out" -name '*.swift' | wc -l) files in $out from ${#protos[@]} protos" >&2
