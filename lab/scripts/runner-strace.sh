#!/bin/sh
# A VM runner under strace, every call to /tmp/st/calls.PID; the runner
# program lab/scripts/runner-calls.sh sets through KRUNBOX_RUNNER.
n=$$
exec /usr/bin/strace -f -qq -o /tmp/st/calls.$n -s 200 -e trace=all /lab/bin/krunbox "$@"
