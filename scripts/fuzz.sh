#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer, `swiftc -sanitize=fuzzer`) of the frame decoder, the request decoder, the
# YAML parser and shoal's YAML writer against it. Runs FUZZ_RUNS inputs (default 1,000,000) and prints the count;
# exits non-zero on the first crash, leaving the input in .build-fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${FUZZ_RUNS:-1000000}"
OUT=.build-fuzz
SWIFT="${SWIFT:-swift}"

# The dependencies (swift-log, Yams) come from the package's own debug build.
"$SWIFT" build --product shoal >/dev/null
BIN="$("$SWIFT" build --show-bin-path)"

rm -rf "$OUT/src"
mkdir -p "$OUT/src" "$OUT/corpus"
# One module of the code under test: the Protocol sources, the ShoalSupport files they use, the YAML writer.
for file in Sources/Protocol/*.swift Sources/ShoalSupport/Names.swift Sources/ShoalSupport/ShoalError.swift \
    Sources/GitOps/YAML.swift scripts/fuzz/FuzzTarget.swift; do
    sed -e '/^import ShoalSupport$/d' -e '/^public import ShoalSupport$/d' "$file" > "$OUT/src/$(basename "$file")"
done
# A few valid inputs to start from: headers and bodies (a result, a step batch, an event), a request, a manifest.
printf '\000{"type":"hello","sender":"planner-1","sentAt":1}\376{"agent":"planner-1","role":"planner","host":"h","pid":1,"capacity":2,"version":"0.1.0"}' > "$OUT/corpus/frames"
printf '\000{"v":4,"type":"result","id":"1","sentAt":1,"workflow":"w","step":"s","attempt":1,"sender":"a"}\376{"agent":"a","error":null,"finishedAt":2,"host":"h","outcome":"succeeded","output":{"artifacts":[{"data":"AAE=","mode":384,"name":"k","path":null,"sensitive":true}],"log":["l\\n"],"summary":"\\u00e9","values":{"n":[1,true,null,{"k":"v"}]}},"pid":1,"startedAt":1}' > "$OUT/corpus/result"
printf '\000{"v":4,"type":"step","id":"1","sentAt":1,"workflow":"w"}\376{"request":{"nodes":2},"steps":[{"artifacts":[],"attempt":1,"inputs":{"p":{"a":1}},"params":{"check":"api"},"role":"validation","step":"check/api"}]}' > "$OUT/corpus/batch"
printf '\000{"id":"e","sentAt":1,"type":"event","v":4,"workflow":"w"}\376{"previousRevision":0,"revision":1,"state":"running","steps":[{"attempt":1,"critical":true,"error":"a\\/b","name":"plan","needs":[],"params":{"n":1.5},"role":"planner","state":"failed","values":{"k":[null,true,"\\u0001"]}}],"workflow":"w"}' > "$OUT/corpus/event"
printf '\001{"nodes":2,"clusterName":"lab","hosts":["10.0.0.1"],"simDelayMilliseconds":10}' > "$OUT/corpus/request"
printf '\002---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata:\n  a: |\n    b\n' > "$OUT/corpus/yaml"
printf '\003caf\303\251 \302\205 line\n  two\n' > "$OUT/corpus/writer"

"${SWIFTC:-swiftc}" -sanitize=fuzzer -parse-as-library -module-name ShoalFuzz -O -g \
    -I "$BIN/Modules" -I .build/checkouts/Yams/Sources/CYaml/include \
    "$OUT"/src/*.swift "$BIN"/Logging.build/*.o "$BIN"/Yams.build/*.o "$BIN"/CYaml.build/src/*.o \
    -o "$OUT/shoal-fuzz"

cd "$OUT"
rm -f crash-*
set +e
# libFuzzer, not Swift's backtracer, handles a trap: it saves the input as crash-*.
SWIFT_BACKTRACE=enable=no ./shoal-fuzz -runs="$RUNS" -max_len=4096 -print_final_stats=1 -artifact_prefix=./crash- corpus > fuzz.log 2>&1
status=$?
set -e
grep -E '^(#[0-9]+ +(INITED|DONE)|==[0-9]+==|Done [0-9]+ runs)' fuzz.log || true
executed=$(grep -E '^stat::number_of_executed_units' fuzz.log | awk '{print $2}')
crashes=$(find . -maxdepth 1 -name 'crash-*' | wc -l)
echo "fuzz: ${executed:-0} inputs run, ${crashes} crashes (log: $OUT/fuzz.log)"
if [ "$status" -ne 0 ]; then tail -40 fuzz.log; fi
exit "$status"
