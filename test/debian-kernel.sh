#!/usr/bin/env bash
# Runs the tests that use the kernel's nftables (firewall/ and the daemon's
# network namespace tests in cmd/sipguard) under Debian's own kernel
# (linux-image-amd64: 6.1 on Debian 12), whatever kernel the host runs.
# The kernel package is downloaded and unpacked here, never installed, so
# the host's boot configuration is untouched; it boots in QEMU without KVM
# (TCG) from an initramfs holding busybox, ip, nft, bash, the modules
# nftables and veth need, and test binaries built beforehand. The tests run
# as root inside the VM and print through its serial console.
#
# Fails if a package's tests fail, if a selected test skips, or if the VM
# has not powered off after $KERNEL_TIMEOUT seconds (default 540). Needs
# root (apt-get download), qemu-system-x86 and busybox-static (test.sh
# installs them). KERNEL_KEEP=1 keeps the work directory and prints it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin

timeout_s=${KERNEL_TIMEOUT:-540}

# What runs in the VM, per package (-test.run and -test.skip; the
# environment overrides them, e.g. KERNEL_FIREWALL_RUN=TestNFT_Reban to run
# one test). firewall/: every test but TestMeasure, which only prints
# timings (meaningless under TCG, and 2 minutes of them; TestNFT_Sync100k
# still loads 100,000 bans). cmd/sipguard: the daemon's tests that check
# the kernel's sets and traffic in namespaces. Not run there: the tests that
# do not depend on nftables (faults, memory, the CLI), those that need
# Kamailio, SIPp and minutes of load (TestAttackKamailio, TestSoakRotation,
# TestCrashRestart), and TestCluster, whose bound of 1 s for a ban to reach
# the other nodes is a real machine's (1.3-1.8 s under TCG) and whose
# kernel side is that of TestDaemonEndToEnd.
firewall_run=${KERNEL_FIREWALL_RUN:-.}
firewall_skip=${KERNEL_FIREWALL_SKIP:-^TestMeasure\$}
sipguard_run=${KERNEL_SIPGUARD_RUN:-^(TestDaemonEndToEnd|TestDaemonReload|TestGatewayMode|TestDaemonStrictPolicy)\$}
sipguard_skip=${KERNEL_SIPGUARD_SKIP:-}

for tool in qemu-system-x86_64 busybox apt-get dpkg-deb; do
	if ! command -v "$tool" >/dev/null; then
		echo "debian-kernel.sh: $tool missing (apt-get install qemu-system-x86 busybox-static)" >&2
		exit 1
	fi
done

prepared=$(date +%s)
work=$(mktemp -d /tmp/sipguard-kernel.XXXXXX)
cleanup() {
	if [ -n "${KERNEL_KEEP:-}" ]; then
		echo "debian-kernel.sh: kept $work"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
chmod 755 "$work" # apt-get download runs as _apt
root=$work/initramfs

# The kernel: the package linux-image-amd64 depends on, unpacked.
image=$(apt-cache depends linux-image-amd64 | awk '$1 == "Depends:" && $2 ~ /^linux-image-/ {print $2; exit}')
if [ -z "$image" ]; then
	echo "debian-kernel.sh: apt knows no linux-image-amd64 (apt-get update?)" >&2
	exit 1
fi
mkdir "$work/deb"
if getent passwd _apt >/dev/null; then chown _apt "$work/deb"; fi
if ! (cd "$work/deb" && apt-get download -q "$image" >/dev/null 2>&1); then
	apt-get update -q >/dev/null
	(cd "$work/deb" && apt-get download -q "$image" >/dev/null)
fi
dpkg-deb -x "$work"/deb/*.deb "$work/kernel"
vmlinuz=$(echo "$work"/kernel/boot/vmlinuz-*)
moddir=$(echo "$work"/kernel/lib/modules/*)

# The modules, dependencies first (read from each module's .modinfo: the
# package ships no modules.dep). crc32c_generic provides the crc32c that
# libcrc32c (needed by nf_tables) asks for by its soft dependency. The
# set types (hash, rbtree, bitmap, pipapo), counter, lookup, payload and
# meta are part of nf_tables.ko on 6.1; IPv6 and network namespaces are
# built in.
mkdir -p "$root/modules"
order=()
addmod() {
	local name=$1 file dep
	case " ${order[*]} " in *" $name "*) return ;; esac
	file=$(find "$moddir" -name "$name.ko" -print -quit)
	if [ -z "$file" ]; then
		echo "debian-kernel.sh: module $name not in $image" >&2
		exit 1
	fi
	for dep in $(tr '\0' '\n' <"$file" | sed -n 's/^depends=//p' | tr ',' ' '); do
		addmod "$dep"
	done
	cp "$file" "$root/modules/"
	order+=("$name")
}
# nft_ct (with conntrack) and nft_limit: the [policy] rules' ct state and
# per-source meters. nft_log and nfnetlink_log: the wire sensor's `log
# group` rules (NFLOG); a host loads them on demand, the VM has no modprobe.
for m in crc32c_generic nf_tables veth nft_ct nft_limit nft_log nfnetlink_log; do addmod "$m"; done
echo "${order[*]}" >"$root/modules/order"

# The commands the tests run (ip, nft, bash for /dev/udp) with their
# libraries, and busybox for the rest (sh, mount, sysctl, unshare...).
mkdir -p "$root"/{bin,proc,sys,dev,tmp,run,var,etc}
ln -s ../run "$root/var/run"
cp /bin/busybox "$root/bin/"
for applet in $(/bin/busybox --list); do
	if [ "$applet" != busybox ]; then ln -s busybox "$root/bin/$applet"; fi
done
copylibs() { # the shared libraries the program $1 loads, and the loader
	local f
	for f in $(ldd "$1" | grep -o '/[^ ]*'); do
		mkdir -p "$root$(dirname "$f")"
		cp -L "$f" "$root$f"
	done
}
mkdir -p "$root/usr/sbin"
for c in ip nft bash; do
	cp "$(command -v "$c")" "$root/usr/sbin/"
	copylibs "$(command -v "$c")"
done
cp /etc/protocols /etc/services "$root/etc/"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"
printf '127.0.0.1 localhost\n::1 localhost\n' >"$root/etc/hosts"

# The test binaries, in their package directories, and what they read.
src=$root/src
mkdir -p "$src/firewall" "$src/cmd/sipguard" "$src/contrib/nats"
# Built as go test builds them (reusing its cache), so with their libraries.
go test -c -o "$src/firewall/firewall.test" ./firewall
go test -c -o "$src/cmd/sipguard/sipguard.test" ./cmd/sipguard
go build -o "$root/usr/sbin/sipguard" ./cmd/sipguard
for b in "$src/firewall/firewall.test" "$src/cmd/sipguard/sipguard.test" "$root/usr/sbin/sipguard"; do
	copylibs "$b"
done
cp contrib/nats/users.conf "$src/contrib/nats/"

cat >"$root/init" <<EOF
#!/bin/sh
echo # past what the firmware left on the console's line
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TMPDIR=/tmp SIPGUARD_BIN=/usr/sbin/sipguard
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mkdir -p /root
for m in \$(cat /modules/order); do
	insmod /modules/\$m.ko || echo "SGVM insmod \$m failed"
done
ip link set lo up
echo "SGVM kernel \$(uname -r) (\$(uname -v | sed -n 's/.*\(Debian [^ ]*\).*/\1/p'))"
runpkg() {
	pkg=\$1 bin=\$2 run=\$3 skip=\$4
	cd /src/\$pkg
	echo "SGVM start \$pkg"
	./\$bin -test.v -test.count=1 -test.timeout=${timeout_s}s -test.run "\$run" -test.skip "\$skip"
	echo "SGVM result \$pkg \$?"
}
runpkg firewall firewall.test '$firewall_run' '$firewall_skip'
runpkg cmd/sipguard sipguard.test '$sipguard_run' '$sipguard_skip'
echo "SGVM done"
poweroff -f
EOF
chmod +x "$root/init"
(cd "$root" && find . | /bin/busybox cpio -o -H newc 2>/dev/null) >"$work/initramfs.cpio"

start=$(date +%s)
echo "prepared in $((start - prepared))s; booting $(basename "$vmlinuz") under QEMU (TCG), modules: ${order[*]}"
log=$work/console.log
set +e
timeout --kill-after=10 "$timeout_s" qemu-system-x86_64 -accel tcg -m 1G -smp 2 \
	-nographic -no-reboot -nic none \
	-kernel "$vmlinuz" -initrd "$work/initramfs.cpio" \
	-append "console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init" >"$log" 2>&1
qrc=$?
set -e
elapsed=$(($(date +%s) - start))

# The verdict: one line per package; each test's result, and all the
# output when something failed.
kernel=$(tr -d '\r' <"$log" | sed -n 's/.*SGVM kernel //p')
fail=0
if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
	echo "debian-kernel.sh: the VM did not finish within ${timeout_s}s" >&2
	fail=1
fi
if [ -z "$kernel" ]; then
	echo "debian-kernel.sh: the VM did not boot" >&2
	fail=1
fi
if grep -q '^SGVM insmod' "$log"; then
	grep '^SGVM insmod' "$log" >&2
	fail=1
fi
verdicts=()
for pkg in firewall cmd/sipguard; do
	rc=$(tr -d '\r' <"$log" | sed -n "s#^SGVM result $pkg ##p")
	skips=$(tr -d '\r' <"$log" | sed -n "\\#^SGVM start $pkg\$#,\\#^SGVM result $pkg #p" | grep -c -e '--- SKIP' || true)
	if [ "$rc" = 0 ] && [ "$skips" = 0 ]; then
		verdicts+=("ok   $pkg, kernel ${kernel:-?}")
	else
		verdicts+=("FAIL $pkg, kernel ${kernel:-?}: exit ${rc:-none}, $skips skipped")
		fail=1
	fi
done
if [ "$fail" = 0 ]; then
	tr -d '\r' <"$log" | grep -E '^--- (PASS|FAIL|SKIP)' || true
else
	tr -d '\r' <"$log" | tail -n +2
fi
echo "== under kernel ${kernel:-?}: QEMU (TCG) ran ${elapsed}s"
printf '%s\n' "${verdicts[@]}"
exit $fail
