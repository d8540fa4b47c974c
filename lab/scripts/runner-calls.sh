#!/bin/sh
# What VM runners call in a typical session (a one-shot run, volumes, a
# named VM with a published port, exec, TSI, cp), each runner under
# strace through KRUNBOX_RUNNER; prints the syscalls, paths, ioctls and
# sockets. Runs inside the lab:
#   cargo xtask lab --file lab/scripts/runner-strace.sh:/runner.sh \
#     --file lab/scripts/runner-calls.sh:/calls.sh --file /usr/bin/strace:/usr/bin/strace -- sh /calls.sh
# (docs/security.md, "What a runner calls", has the figures.)
mkdir -p /tmp/st /tmp/vol /tmp/rovol; echo hi > /tmp/rovol/f
export KRUNBOX_RUNNER=/runner.sh KRUNBOX_STATE_DIR=/tmp/state
R="$KRUNBOX_TEST_ROOTFS"
[ -x /usr/bin/strace ] || { echo "no strace in the lab"; exit 3; }
krunbox run --rootfs "$R" -- echo one-shot
krunbox run --rootfs "$R" --net none -v /tmp/vol:/vol -v /tmp/rovol:/ro:ro -- sh -c 'cat /ro/f; echo x > /vol/x'
krunbox start --name a --rootfs "$R" -p 18080:8080 >/dev/null
krunbox exec a -- sh -c 'echo exec ok; wget -q -O- http://127.0.0.1:1/ 2>&1 | head -1'
dd if=/dev/urandom of=/tmp/f bs=1M count=4 2>/dev/null
krunbox cp /tmp/f a:/tmp/f && krunbox cp a:/tmp/f /tmp/back && cmp /tmp/f /tmp/back && echo cp ok
krunbox stop a
ls /tmp/st
cat /tmp/st/calls.* | sed -E 's/^[0-9]+ +//' | grep -oE '^[a-z0-9_]+\(' | sort | uniq -c | sort -rn
echo "=== paths"
cat /tmp/st/calls.* | grep -oE '"/[^"]*"' | sed -E 's#/[0-9]+(/|")#/N\1#g' | sort | uniq -c | sort -rn | head -80
echo "=== ioctls"
cat /tmp/st/calls.* | grep -oE 'ioctl\([0-9]+, [A-Z_0-9x]+' | awk '{print $2}' | sort | uniq -c | sort -rn | head -40
echo "=== sockets"
cat /tmp/st/calls.* | grep -E '^[0-9]+ +(socket|connect|bind)\(' | sed -E 's/^[0-9]+ +//' | cut -c1-120 | sort | uniq -c | sort -rn | head -30
