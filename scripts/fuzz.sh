#!/bin/sh
# Runs every fuzz target of the module for FUZZTIME each (default 1m).
# Go 1.26's fuzzing coordinator may end a run with "context deadline
# exceeded" and no failing input when -fuzztime runs out (golang/go#75804,
# fixed in Go 1.27): such a run is reported and not counted as a failure.
# A run that writes a failing input to testdata/fuzz fails.
set -u
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-1m}
status=0
for pkg in $($GO list ./...); do
	dir=$($GO list -f '{{.Dir}}' "$pkg")
	for f in $($GO test -short -list '^Fuzz' "$pkg" | grep '^Fuzz'); do
		echo "fuzz $pkg $f"
		corpus="$dir/testdata/fuzz/$f"
		before=$(ls "$corpus" 2>/dev/null | sort)
		out=$($GO test -short -run '^$' -fuzz "^$f\$" -fuzztime "$FUZZTIME" "$pkg" 2>&1)
		rc=$?
		after=$(ls "$corpus" 2>/dev/null | sort)
		if [ $rc -eq 0 ]; then
			echo "$out" | tail -n 1
		elif [ "$before" = "$after" ] && echo "$out" | grep -q 'context deadline exceeded'; then
			echo "$out" | tail -n 3
			echo "fuzz $f: ended by Go's fuzztime race (golang/go#75804), no failing input: not a failure"
		else
			echo "$out"
			status=1
		fi
	done
done
exit $status
