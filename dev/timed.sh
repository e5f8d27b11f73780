#!/usr/bin/env bash
# dev/timed.sh LABEL COMMAND...: runs COMMAND, then prints how long it took ("time  LABEL  12.3 s") to stderr, and
# exits with its status. `make test` times each of its steps with it (doc/testing.md says where the time goes).
label=$1
shift
start=$EPOCHREALTIME
"$@"
status=$?
awk -v l="$label" -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "time  %-34s %7.1f s\n", l, b - a }' >&2
exit $status
