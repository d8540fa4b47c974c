#!/bin/sh
# Copies 64 MiB in and out of a named VM three times per boot, ROUNDS
# boots, and counts the VMs lost; optional kvm-amd parameters reload the
# module first. Runs inside the lab:
#   cargo xtask lab --release --file lab/scripts/copy-stress.sh:/stress.sh -- sh /stress.sh 6 [PARAM=VALUE...]
# (docs/reliability.md, "The lab's own faults", has the figures.)
rounds=${1:?usage: stress.sh ROUNDS [kvm-amd params...]}; shift
if [ $# -gt 0 ]; then
  rmmod kvm_amd && insmod /lab/modules/kvm-amd.ko "$@" || { echo "reloading kvm-amd failed"; exit 3; }
fi
export KRUNBOX_STATE_DIR=/tmp/stress-state
dd if=/dev/urandom of=/tmp/big bs=1M count=64 2>/dev/null
lost=0
for r in $(seq 1 "$rounds"); do
  krunbox start --name a --rootfs "$KRUNBOX_TEST_ROOTFS" --mem 512 --log-level 3 >/dev/null \
    || { echo "round $r: start failed"; lost=$((lost+1)); continue; }
  for i in 1 2 3; do
    if ! krunbox cp /tmp/big a:/tmp/big 2>/tmp/err || ! krunbox cp a:/tmp/big /tmp/back 2>>/tmp/err; then
      echo "round $r, copy $i: $(head -1 /tmp/err)"
      grep -v proxy "$KRUNBOX_STATE_DIR/a/vm.log" | tail -2
      lost=$((lost+1))
      break
    fi
  done
  krunbox stop a >/dev/null 2>&1
done
echo "lost $lost of $rounds VMs"
