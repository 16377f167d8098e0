#!/usr/bin/env bash
# Build the sipguard Debian package from this checkout:
#
#   packaging/deb/build.sh [--version V] [--arch amd64|arm64] [-o DIR]
#
# writes DIR/sipguard_V_ARCH.deb (DIR defaults to dist/ at the top of the
# repository). Needs Go and dpkg-deb, not root: dpkg-deb --root-owner-group
# makes every file root's. No network, once Go's module cache holds the
# modules of go.sum.
#
#   --version V  the package version, also what `sipguard version` prints.
#                Default: from the latest v* tag (v1.2.0 -> 1.2.0, three
#                commits later 1.2.0+git3.gabcdef0), else
#                0.0.0~git<commit time>.<commit>.
#   --arch A     amd64 or arm64 (default: this machine's). Cross builds
#                need nothing more: the binary is pure Go.
#   -o DIR       where to write the .deb.
#
# The package layout, maintainer scripts and their reasons are in
# packaging/README.md; packaging/test.sh installs, upgrades and purges it.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/packaging/deb
export PATH=$PATH:/usr/local/go/bin

# Who the package names as its maintainer.
maintainer=${SIPGUARD_MAINTAINER:-sipguard developers <sipguard@users.noreply.github.com>}

usage() {
	sed -n '2,17s/^# \{0,1\}//p' "$0"
}

die() {
	echo "build.sh: $*" >&2
	exit 1
}

version=""
arch=""
out=$root/dist
while [ $# -gt 0 ]; do
	case $1 in
	--version) [ $# -ge 2 ] || die "--version needs a value"; version=$2; shift 2 ;;
	--version=*) version=${1#*=}; shift ;;
	--arch) [ $# -ge 2 ] || die "--arch needs a value"; arch=$2; shift 2 ;;
	--arch=*) arch=${1#*=}; shift ;;
	-o) [ $# -ge 2 ] || die "-o needs a value"; out=$2; shift 2 ;;
	-o*) out=${1#-o}; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; echo "build.sh: unknown argument: $1" >&2; exit 2 ;;
	esac
done

git_() { git -C "$root" "$@" 2>/dev/null; }

# default_version derives a Debian version from git (see the header).
default_version() {
	local d
	if d=$(git_ describe --tags --match 'v[0-9]*'); then
		d=${d#v}
		if [[ $d =~ ^(.*)-([0-9]+)-g([0-9a-f]+)$ ]]; then
			d="${BASH_REMATCH[1]}+git${BASH_REMATCH[2]}.g${BASH_REMATCH[3]}"
		fi
		echo "${d//-/\~}" # v1.2.0-rc1 sorts before 1.2.0
	elif d=$(TZ=UTC git_ log -1 --format='%cd.%h' --date='format-local:%Y%m%d%H%M%S'); then
		echo "0.0.0~git$d"
	else
		echo "0.0.0~dev"
	fi
}

[ -n "$version" ] || version=$(default_version)
[[ $version =~ ^[0-9][A-Za-z0-9.+~-]*$ ]] && dpkg --validate-version "$version" 2>/dev/null ||
	die "invalid package version: \"$version\" (a Debian version starting with a digit, e.g. 1.2.0)"

[ -n "$arch" ] || arch=$(dpkg --print-architecture)
case $arch in
amd64 | arm64) goarch=$arch ;;
*) die "unsupported architecture: $arch (amd64 or arm64)" ;;
esac

command -v go >/dev/null || die "go not found (PATH=$PATH)"
command -v dpkg-deb >/dev/null || die "dpkg-deb not found"

# Timestamps of the files in the package: the commit's, so that two builds
# of one commit are the same bytes.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git_ log -1 --format=%ct || date +%s)}
export SOURCE_DATE_EPOCH

if [ -n "$(git_ status --porcelain --untracked-files=no)" ]; then
	echo "build.sh: note: the working tree has uncommitted changes" >&2
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
stage=$(mktemp -d "${TMPDIR:-/tmp}/sipguard-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT
pkg=$stage/root
umask 022

echo "build.sh: go build sipguard $version for linux/$goarch"
(
	cd "$root"
	CGO_ENABLED=0 GOOS=linux GOARCH=$goarch go build -trimpath -buildvcs=false \
		-ldflags "-s -w -X main.version=$version" \
		-o "$pkg/usr/sbin/sipguard" ./cmd/sipguard
)
chmod 0755 "$pkg/usr/sbin/sipguard"

# Every Go module linked in must be in the copyright file.
for m in $(go version -m "$pkg/usr/sbin/sipguard" | awk '$1 == "dep" { print $2 }'); do
	grep -q "^ *Files:.* vendor/$m/\*\|^ vendor/$m/\*" "$here/copyright" ||
		echo "build.sh: warning: $m is linked in but missing from packaging/deb/copyright" >&2
done

unit=$root/contrib/systemd/sipguard.service
grep -q '^ExecStart=/usr/sbin/sipguard ' "$unit" ||
	die "$unit does not start /usr/sbin/sipguard, where the package installs it"

# 0640: it may hold the cluster's NATS password ([cluster]).
install -D -m 0640 "$root/rules.toml" "$pkg/etc/sipguard/rules.toml"
install -D -m 0644 "$root/contrib/logrotate/sipguard" "$pkg/etc/logrotate.d/sipguard"
install -D -m 0644 "$unit" "$pkg/lib/systemd/system/sipguard.service"

doc=$pkg/usr/share/doc/sipguard
install -D -m 0644 "$here/copyright" "$doc/copyright"
install -m 0644 "$here/README.Debian" "$doc/README.Debian"
install -m 0644 "$root/README.md" "$doc/README.md"
install -D -m 0644 "$here/lintian-overrides" "$pkg/usr/share/lintian/overrides/sipguard"
gzip -9n "$doc/README.md" # Debian policy 12.3: documentation over 4 kB is compressed
cp -R "$root/contrib" "$doc/examples"
find "$doc/examples" -type d -exec chmod 0755 {} + -o -type f -exec chmod 0644 {} +

# A native package's changelog (changelog.Debian.gz for a version with a
# Debian revision).
changelog=changelog.gz
[[ $version == *-* ]] && changelog=changelog.Debian.gz
revision=$(git_ rev-parse --short=12 HEAD || echo "an unknown commit")
{
	echo "sipguard ($version) unstable; urgency=medium"
	echo
	echo "  * Built from the sipguard repository at $revision."
	echo
	echo " -- $maintainer  $(date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n >"$doc/$changelog"
chmod 0644 "$doc/$changelog"

# The man page and shell completions, generated from the CLI's own help
# (run on the build host, so that an arm64 package builds anywhere).
gen() { (cd "$root" && go run -trimpath -ldflags "-X main.version=$version" ./cmd/sipguard "$@"); }
install -d -m 0755 "$pkg/usr/share/man/man8" "$pkg/usr/share/bash-completion/completions" "$pkg/usr/share/zsh/vendor-completions" \
	"$pkg/usr/share/fish/vendor_completions.d"
gen man | gzip -9n >"$pkg/usr/share/man/man8/sipguard.8.gz"
gen completion bash >"$pkg/usr/share/bash-completion/completions/sipguard"
gen completion zsh >"$pkg/usr/share/zsh/vendor-completions/_sipguard"
gen completion fish >"$pkg/usr/share/fish/vendor_completions.d/sipguard.fish"
chmod 0644 "$pkg/usr/share/man/man8/sipguard.8.gz" "$pkg/usr/share/bash-completion/completions/sipguard" "$pkg/usr/share/zsh/vendor-completions/_sipguard" \
	"$pkg/usr/share/fish/vendor_completions.d/sipguard.fish"

install -d -m 0755 "$pkg/DEBIAN"
install -m 0755 "$here/postinst" "$here/prerm" "$here/postrm" "$pkg/DEBIAN/"
printf '%s\n' /etc/logrotate.d/sipguard /etc/sipguard/rules.toml >"$pkg/DEBIAN/conffiles"
(cd "$pkg" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) >"$pkg/DEBIAN/md5sums"
installed_size=$(du -s -k --exclude=DEBIAN "$pkg" | cut -f1)
cat >"$pkg/DEBIAN/control" <<EOF
Package: sipguard
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $installed_size
Recommends: nftables
Suggests: logrotate
Section: net
Priority: optional
Homepage: https://github.com/sipguard/sipguard
Description: ban SIP brute force, scanners and toll fraud in nftables
 sipguard follows the logs of Asterisk, FreePBX, Kamailio and 3CX, or
 receives an appliance's syslog (Yeastar), counts authentication failures
 per source address in exact sliding windows, and bans attackers in its own
 nftables table, talking netlink itself. It takes the attacker's address
 only from the packet-source position of each log format, never from text
 an attacker writes.
 .
 The service is not enabled on installation: allowlist your SIP trunks,
 proxies and office networks in /etc/sipguard/rules.toml first, then run
 "systemctl enable --now sipguard" (see README.Debian).
EOF
chmod 0644 "$pkg/DEBIAN/control" "$pkg/DEBIAN/conffiles" "$pkg/DEBIAN/md5sums"

find "$pkg" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
deb=$out/sipguard_${version}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >/dev/null
echo "build.sh: wrote $deb"
