#!/usr/bin/env bash
# test-packages.sh — CI check of the logagent packages (make test-packages).
#
# Needs root on a Debian machine: it installs the .deb for real, then
# upgrades, removes and purges it. It builds every package into a temporary
# directory (the repo's dist/ is untouched), installs `rpm` and `systemd`
# from apt only when missing, prints PASS/FAIL per step and exits non-zero
# on any failure. Whatever happens, it purges the package it installed.
#
# Environment: VERSION, COMMIT, GO, MAKE as set by packaging.mk; other make
# variables given to `make test-packages` (e.g. PKG_SRC=/tmp/stub PKG_MAIN=.)
# reach the inner make through MAKEFLAGS.
set -u -o pipefail

cd "$(dirname "$0")/.." || exit 1
MAKE=${MAKE:-make}
GO=${GO:-go}
VERSION=${VERSION:-$(sh packaging/version.sh)}
V2="$VERSION+1" # the upgrade: sorts after VERSION for dpkg and rpm
HOSTARCH=$(dpkg --print-architecture 2>/dev/null || echo amd64)
STARTED=$(date +%s)
TMP=$(mktemp -d /tmp/logagent-test-packages.XXXXXX)
DIST=$TMP/dist
LOG=$TMP/log
INSTALLED=0
passes=0
fails=0

pass() { echo "PASS: $*"; passes=$((passes + 1)); }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
# check DESCRIPTION COMMAND...: PASS if COMMAND succeeds.
check() {
	local desc=$1
	shift
	if "$@" >"$LOG" 2>&1; then pass "$desc"; else fail "$desc"; sed 's/^/    /' "$LOG"; fi
}
# must DESCRIPTION COMMAND...: like check, but stop the test on failure.
must() {
	local desc=$1
	shift
	if "$@" >"$LOG" 2>&1; then
		pass "$desc"
	else
		fail "$desc"
		sed 's/^/    /' "$LOG" | tail -40
		echo "stopping: a later step needs this one"
		exit 1
	fi
}
section() { echo; echo "== $*"; }

purge_installed() {
	if dpkg-query -W -f='${db:Status-Abbrev}' logagent 2>/dev/null | grep -q '^[a-z][a-zA-Z]'; then
		DEBIAN_FRONTEND=noninteractive dpkg -P logagent >/dev/null 2>&1 || true
	fi
}
cleanup() {
	local rc=$?
	if [ "$INSTALLED" = 1 ]; then purge_installed; fi
	rm -rf "$TMP"
	echo
	echo "test-packages took $(($(date +%s) - STARTED))s"
	echo "test-packages: $passes passed, $fails failed"
	if [ "$fails" -gt 0 ] && [ "$rc" = 0 ]; then rc=1; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$(id -u)" != 0 ]; then
	fail "must run as root (installs the .deb on this machine)"
	exit 1
fi
if ! command -v dpkg >/dev/null 2>&1; then
	fail "needs a Debian machine (no dpkg)"
	exit 1
fi

apt_updated=0
need() { # need COMMAND PACKAGE: apt-get install PACKAGE if COMMAND is missing
	command -v "$1" >/dev/null 2>&1 && return 0
	echo "installing $2 (for $1)"
	export DEBIAN_FRONTEND=noninteractive
	if [ "$apt_updated" = 0 ]; then
		apt-get update -q >/dev/null || return 1
		apt_updated=1
	fi
	apt-get install -y -q --no-install-recommends "$2" >/dev/null
}

section "tools"
check "rpm available (Debian package rpm)" need rpm rpm
check "systemd-analyze available (Debian package systemd)" need systemd-analyze systemd

# Leftovers of an earlier run that was killed.
if dpkg-query -W -f='${db:Status-Abbrev}' logagent 2>/dev/null | grep -q '^[a-z][a-zA-Z]'; then
	echo "note: purging a logagent package already on this machine"
	INSTALLED=1
	purge_installed
fi

section "version mapping (packaging/version.sh)"
while read -r describe want; do
	got=$(sh packaging/version.sh "$describe")
	if [ "$got" = "$want" ]; then pass "version $describe -> $got"; else fail "version $describe -> $got, want $want"; fi
done <<'EOF'
v1.2.3 1.2.3
v1.2.3-dirty 1.2.3+dirty
v1.2.3-4-gabc1234 1.2.3+git4.gabc1234
v1.2.3-4-gabc1234-dirty 1.2.3+git4.gabc1234.dirty
v1.3.0-rc1 1.3.0~rc1
abc1234 0.0.0~gitabc1234
1234567 0.0.0~git1234567
abc1234-dirty 0.0.0~gitabc1234.dirty
EOF
check "version order: 0.0.0~dev < 0.0.0~gitabc < 1.3.0~rc1 < 1.3.0 < 1.3.0+git1.gabc < $V2 > $VERSION" \
	sh -c 'dpkg --compare-versions 0.0.0~dev lt 0.0.0~gitabc &&
		dpkg --compare-versions 0.0.0~gitabc lt 1.3.0~rc1 &&
		dpkg --compare-versions 1.3.0~rc1 lt 1.3.0 &&
		dpkg --compare-versions 1.3.0 lt 1.3.0+git1.gabc &&
		dpkg --compare-versions "$1" gt "$2"' _ "$V2" "$VERSION"

section "build (VERSION=$VERSION, upgrade $V2)"
must "make deb rpm: 4 packages" "$MAKE" --no-print-directory -f packaging/packaging.mk deb rpm \
	VERSION="$VERSION" PKG_DIST="$DIST" GO="$GO"
must "make deb-$HOSTARCH for the upgrade" "$MAKE" --no-print-directory -f packaging/packaging.mk "deb-$HOSTARCH" \
	VERSION="$V2" PKG_DIST="$DIST" GO="$GO"
ls -l "$DIST"

section "inspect the .deb packages"
want_paths="./usr/bin/logagent ./etc/logagent/logagent.yaml ./lib/systemd/system/logagent.service
./usr/share/doc/logagent/copyright ./usr/share/doc/logagent/README.md"
elf_machine() { od -An -tx1 -j18 -N1 | tr -d ' \n'; }
for arch in amd64 arm64; do
	deb=$DIST/logagent_${VERSION}_$arch.deb
	check "$arch: $(basename "$deb") exists" test -s "$deb"
	[ -s "$deb" ] || continue
	dpkg-deb -c "$deb" >"$TMP/contents"
	for p in $want_paths; do
		check "$arch deb contains $p" grep -q " $p\$" "$TMP/contents"
	done
	check "$arch deb: conffile /etc/logagent/logagent.yaml" \
		sh -c 'dpkg-deb --ctrl-tarfile "$1" | tar -xO ./conffiles | grep -qx /etc/logagent/logagent.yaml' _ "$deb"
	check "$arch deb: Version $VERSION" test "$(dpkg-deb -f "$deb" Version)" = "$VERSION"
	check "$arch deb: Architecture $arch" test "$(dpkg-deb -f "$deb" Architecture)" = "$arch"
	case $arch in amd64) m=3e ;; arm64) m=b7 ;; esac
	dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/bin/logagent >"$TMP/bin"
	check "$arch deb: /usr/bin/logagent is an ELF for $arch" test "$(elf_machine <"$TMP/bin")" = "$m"
	check "$arch deb: maintainer scripts" \
		sh -c 'dpkg-deb -I "$1" | grep -q preinst && dpkg-deb -I "$1" | grep -q postinst &&
			dpkg-deb -I "$1" | grep -q prerm && dpkg-deb -I "$1" | grep -q postrm' _ "$deb"
done
echo "--- dpkg-deb -c logagent_${VERSION}_$HOSTARCH.deb"
dpkg-deb -c "$DIST/logagent_${VERSION}_$HOSTARCH.deb"

section "inspect the .rpm packages"
for arch in x86_64 aarch64; do
	rpmf=$DIST/logagent-$VERSION.$arch.rpm
	check "$arch: $(basename "$rpmf") exists" test -s "$rpmf"
	[ -s "$rpmf" ] || continue
	rpm -qlp "$rpmf" >"$TMP/contents" 2>/dev/null
	for p in $want_paths; do
		check "$arch rpm contains ${p#.}" grep -qx "${p#.}" "$TMP/contents"
	done
	check "$arch rpm: version $VERSION, arch $arch" \
		test "$(rpm -qp --qf '%{VERSION} %{ARCH}' "$rpmf" 2>/dev/null)" = "$VERSION $arch"
	check "$arch rpm: %config(noreplace) /etc/logagent/logagent.yaml" \
		sh -c 'rpm -qp --qf "[%{FILEFLAGS:fflags} %{FILENAMES}\n]" "$1" 2>/dev/null | grep -qx "cn /etc/logagent/logagent.yaml"' _ "$rpmf"
	check "$arch rpm: scripts create the user and restart on upgrade" \
		sh -c 'rpm -qp --scripts "$1" 2>/dev/null >"$2" && grep -q "useradd" "$2" && grep -q "try-restart" "$2" && grep -q "systemctl stop" "$2"' \
		_ "$rpmf" "$TMP/scripts"
done
echo "--- rpm -qlp logagent-$VERSION.x86_64.rpm"
rpm -qlp "$DIST/logagent-$VERSION.x86_64.rpm" 2>/dev/null
for f in packaging/scripts/preinstall.sh packaging/scripts/deb/* packaging/scripts/rpm/*; do
	check "sh -n $f" sh -n "$f"
done

section "install logagent_${VERSION}_$HOSTARCH.deb"
export DEBIAN_FRONTEND=noninteractive
INSTALLED=1
must "dpkg -i" dpkg -i "$DIST/logagent_${VERSION}_$HOSTARCH.deb"
check "dpkg status: installed $VERSION" \
	test "$(dpkg-query -W -f='${db:Status-Abbrev}${Version}' logagent)" = "ii $VERSION"
check "user logagent exists" getent passwd logagent
check "user logagent: home /var/lib/logagent, nologin shell" \
	sh -c 'getent passwd logagent | grep -Eq ":/var/lib/logagent:(/usr/sbin/nologin|/sbin/nologin|/bin/false)$"'
check "user logagent: system uid (< 1000)" test "$(id -u logagent)" -lt 1000
check "user logagent: primary group logagent" test "$(id -gn logagent)" = logagent
check "user logagent in group adm" sh -c 'id -nG logagent | tr " " "\n" | grep -qx adm'
stat_is() { test "$(stat -c '%U:%G %a' "$1")" = "$2" || { stat -c '%n %U:%G %a' "$1"; return 1; }; }
check "/usr/bin/logagent root:root 755" stat_is /usr/bin/logagent "root:root 755"
check "/etc/logagent/logagent.yaml root:logagent 640" stat_is /etc/logagent/logagent.yaml "root:logagent 640"
check "/lib/systemd/system/logagent.service root:root 644" stat_is /lib/systemd/system/logagent.service "root:root 644"
check "/var/lib/logagent logagent:logagent 750" stat_is /var/lib/logagent "logagent:logagent 750"
check "/var/lib/logagent/out logagent:logagent 750" stat_is /var/lib/logagent/out "logagent:logagent 750"
check "/usr/share/doc/logagent/copyright is MIT" grep -q "License: MIT" /usr/share/doc/logagent/copyright
check "dpkg lists the conffile" sh -c "dpkg-query -W -f='\${Conffiles}' logagent | grep -q '/etc/logagent/logagent.yaml [0-9a-f]'"
check "service enabled, not started (multi-user.target.wants symlink)" \
	test -L /etc/systemd/system/multi-user.target.wants/logagent.service
if [ -d /run/systemd/system ]; then
	check "service not running after install" sh -c '! systemctl is-active --quiet logagent.service'
fi

section "run as the logagent user"
out=$(runuser -u logagent -- /usr/bin/logagent --version 2>&1)
rc=$?
echo "$ logagent --version"
echo "$out" | sed 's/^/    /'
check "logagent --version exits 0" test "$rc" = 0
check "logagent --version prints $VERSION" grep -qF -- "$VERSION" <<<"$out"
check "logagent --version prints the Go version" grep -q "go1\." <<<"$out"
out=$(cd /var/lib/logagent && timeout 60 runuser -u logagent -- /usr/bin/logagent -c /etc/logagent/logagent.yaml --dry-run 2>&1)
rc=$?
echo "$ logagent -c /etc/logagent/logagent.yaml --dry-run   (exit $rc)"
echo "$out" | head -60 | sed 's/^/    /'
check "logagent --dry-run on the default config exits 0 (as user logagent)" test "$rc" = 0
check "logagent --dry-run --quiet (the unit's ExecStartPre) exits 0" \
	sh -c 'cd /var/lib/logagent && timeout 60 runuser -u logagent -- /usr/bin/logagent -c /etc/logagent/logagent.yaml --dry-run --quiet'
check "the default config reads the journal" grep -qF "input journal (journald)" <<<"$out"
check "the default config reads /var/log/*.log" grep -qF "input varlog:" <<<"$out"
check "the default config writes only to /dev/null (nothing can fill the disk)" \
	bash -c 'test "$(grep -c "^output " <<<"$1")" = 1 && grep -qF "output discard (file): file /dev/null;" <<<"$1"' _ "$out"
check "the default config has no stdout output (the journal would read it back)" \
	sh -c '! grep -Eq "^[^#]*type: *stdout" /etc/logagent/logagent.yaml'
if [ -f /var/log/syslog ] && [ "$(stat -c %G /var/log/syslog)" = adm ]; then
	check "user logagent can read /var/log/syslog (group adm)" runuser -u logagent -- test -r /var/log/syslog
fi

section "systemd-analyze"
echo "$ systemd-analyze verify /lib/systemd/system/logagent.service"
systemd-analyze verify /lib/systemd/system/logagent.service >"$TMP/verify" 2>&1
rc=$?
sed 's/^/    /' "$TMP/verify"
# Messages about other units on the machine are not ours to fix.
if [ "$rc" = 0 ] && ! grep -q '^/lib/systemd/system/logagent.service' "$TMP/verify" &&
	! grep -qi 'logagent.service:' "$TMP/verify"; then
	pass "systemd-analyze verify logagent.service: no complaint"
else
	fail "systemd-analyze verify logagent.service (exit $rc)"
fi
echo "$ systemd-analyze security --offline=yes (exposure, for information)"
systemd-analyze security --offline=yes /lib/systemd/system/logagent.service 2>&1 | tail -1 | sed 's/^/    /'

section "upgrade to $V2 keeping an edited config"
mark="edited by test-packages $$ $(date +%s)"
printf '\n# %s\n' "$mark" >>/etc/logagent/logagent.yaml
runuser -u logagent -- touch /var/lib/logagent/sentinel
must "dpkg -i (upgrade)" dpkg -i "$DIST/logagent_${V2}_$HOSTARCH.deb"
check "dpkg status: installed $V2" test "$(dpkg-query -W -f='${db:Status-Abbrev}${Version}' logagent)" = "ii $V2"
check "edited config kept" grep -qF "$mark" /etc/logagent/logagent.yaml
check "no .dpkg-dist/.dpkg-new config left" sh -c '! ls /etc/logagent/*.dpkg-* 2>/dev/null | grep -q .'
check "config still root:logagent 640" stat_is /etc/logagent/logagent.yaml "root:logagent 640"
check "data dir kept (sentinel)" test -f /var/lib/logagent/sentinel
check "logagent --version prints $V2" sh -c 'runuser -u logagent -- /usr/bin/logagent --version | grep -qF -- "$1"' _ "$V2"
check "logagent --dry-run on the edited config exits 0" \
	sh -c 'cd /var/lib/logagent && timeout 60 runuser -u logagent -- /usr/bin/logagent -c /etc/logagent/logagent.yaml --dry-run --quiet'

section "remove (dpkg -r)"
must "dpkg -r" dpkg -r logagent
check "dpkg status: config-files" test "$(dpkg-query -W -f='${db:Status-Abbrev}' logagent)" = "rc "
check "binary removed" test ! -e /usr/bin/logagent
check "unit removed" test ! -e /lib/systemd/system/logagent.service
check "config kept with the edit" grep -qF "$mark" /etc/logagent/logagent.yaml
check "data dir kept" test -f /var/lib/logagent/sentinel
check "user kept" getent passwd logagent

section "purge (dpkg -P)"
must "dpkg -P" dpkg -P logagent
INSTALLED=0
check "package gone from dpkg" sh -c '! dpkg-query -W -f="\${db:Status-Abbrev}" logagent 2>/dev/null | grep -q "^[a-z][a-zA-Z]"'
check "/var/lib/logagent removed" test ! -e /var/lib/logagent
check "/etc/logagent removed" test ! -e /etc/logagent
check "enablement symlink removed" test ! -e /etc/systemd/system/multi-user.target.wants/logagent.service
