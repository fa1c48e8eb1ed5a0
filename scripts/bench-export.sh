#!/bin/sh
# Whole-process kv export and kv import on the embedded default (SQLite + a
# local directory), with wall time and peak RSS, beside floors measured in the
# same run: reading the value files with tar (open, read, close each) and with
# cat (which also maps a buffer per file). BENCHMARKS.md records the results.
#
#   scripts/bench-export.sh [KEYS...]     (default: 100000 1000000)
#
# WORK (default /tmp/kvflow-export-bench) holds the binary, the data
# directories (kept between runs: a populated one is reused) and the files;
# BIN runs another kvflow binary instead of building this tree's; RUNS is
# the number of timed exports (default 3). Populating 1,000,000 keys takes
# about 12 minutes and 5 GB of disk on a 2-core machine.
set -eu
work=${WORK:-/tmp/kvflow-export-bench}
runs=${RUNS:-3}
mkdir -p "$work"
bin=${BIN:-$work/kvflow}
if [ -z "${BIN:-}" ]; then
	go build -o "$bin" ./cmd/kvflow
fi
timed() {
	label=$1
	shift
	/usr/bin/time -o "$work/time" -f '%e s, peak RSS %M KB' "$@" >/dev/null 2>"$work/stderr" ||
		{ cat "$work/stderr" >&2; exit 1; }
	echo "$label: $(cat "$work/time")"
}
for n in ${@:-100000 1000000}; do
	data=$work/data$n
	if [ ! -d "$data" ]; then
		# n small STRING entries of one namespace, as JSON Lines, imported.
		awk -v n="$n" 'BEGIN { for (i = 0; i < n; i++) printf "{\"namespace\":\"bench.export\",\"key\":\"k%07d\",\"type\":\"STRING\",\"value\":\"value %d\"}\n", i, i }' >"$work/in$n.jsonl"
		KVFLOW_DATA_DIR=$data timed "populate $n keys (kv import)" "$bin" kv import "$work/in$n.jsonl"
		rm "$work/in$n.jsonl"
	fi
	for i in $(seq "$runs"); do
		KVFLOW_DATA_DIR=$data timed "kv export, $n keys, run $i" "$bin" kv export -o /dev/null
		timed "floor: tar of the $n value files, run $i" sh -c "tar -cf - -C '$data/storage' . | cat >/dev/null"
		timed "floor: cat of the $n value files, run $i" sh -c "find '$data/storage' -type f -exec cat {} + >/dev/null"
	done
	if [ -n "${IMPORT:-}" ]; then # IMPORT=1: also import the export into a fresh data directory
		KVFLOW_DATA_DIR=$data "$bin" kv export -o "$work/out$n.jsonl" 2>/dev/null
		rm -rf "$work/import$n"
		KVFLOW_DATA_DIR=$work/import$n timed "kv import of the export, $n keys, fresh data directory" "$bin" kv import "$work/out$n.jsonl"
		rm -rf "$work/import$n" "$work/out$n.jsonl"
	fi
done
