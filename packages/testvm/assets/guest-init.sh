#!/bin/sh
# PID 1 of the @vmlink/testvm guest: set up the basics, then hand over to the node
# runner, which talks to the host over the control virtio-serial port. Lines starting
# with "vmlink-testvm:" land in the host's console log and in boot-failure errors.
export PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin
export HOME=/root

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /dev/virtio-ports
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=1777 tmpfs /tmp
# devtmpfs has no fd links; programs (and node) expect them.
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr

echo "vmlink-testvm: init started"
# Optional modules (modules/optional) load only when named in vmlink.modules=a,b on the
# kernel command line, e.g. the virtio vsock transport when the VM has a vsock device.
wanted=" $(sed -n 's/.*vmlink\.modules=\([^ ]*\).*/\1/p' /proc/cmdline | tr ',' ' ') "
while read -r module; do
  [ -n "$module" ] || continue
  if grep -qx "$module" /opt/vmlink-testvm/modules/optional; then
    case "$wanted" in *" $module "*) ;; *) continue ;; esac
  fi
  insmod "/opt/vmlink-testvm/modules/$module.ko" || echo "vmlink-testvm: insmod $module failed"
done < /opt/vmlink-testvm/modules/order

ip link set lo up
ip addr add 127.0.0.1/8 dev lo 2>/dev/null
hostname vmlink-testvm

echo "vmlink-testvm: starting runner"
node /opt/vmlink-testvm/runner.cjs
echo "vmlink-testvm: runner exited with status $?"
sync
poweroff -f
