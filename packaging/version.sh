#!/bin/sh
# version.sh [DESCRIBE] — print the package version of logagent.
#
# DESCRIBE is the output of `git describe --tags --always --dirty`; without
# an argument it is computed from the work tree. The result is valid both as
# a Debian version and as an RPM version, always starts with a digit, and
# sorts the way releases do:
#
#   v1.2.3                 -> 1.2.3
#   v1.2.3-dirty           -> 1.2.3+dirty
#   v1.2.3-4-gabc1234      -> 1.2.3+git4.gabc1234        (4 commits after v1.2.3)
#   v1.2.3-4-gabc1234-dirty-> 1.2.3+git4.gabc1234.dirty
#   v1.3.0-rc1             -> 1.3.0~rc1                  (sorts before 1.3.0)
#   abc1234  (no tag yet)  -> 0.0.0~gitabc1234
#   abc1234-dirty          -> 0.0.0~gitabc1234.dirty
#   (no git, no commit)    -> 0.0.0~dev
set -eu

if [ $# -gt 0 ]; then
	d=$1
else
	d=$(git describe --tags --always --dirty 2>/dev/null || true)
fi

case $d in
'') echo "0.0.0~dev"; exit 0 ;;
esac

dirty=
case $d in
*-dirty) dirty=dirty; d=${d%-dirty} ;;
esac

# Commits after the tag: <tag>-<n>-g<sha>.
post=
if printf '%s\n' "$d" | grep -Eq -- '-[0-9]+-g[0-9a-f]+$'; then
	post=$(printf '%s\n' "$d" | sed -E 's/^.*-([0-9]+)-g([0-9a-f]+)$/git\1.g\2/')
	d=$(printf '%s\n' "$d" | sed -E 's/-[0-9]+-g[0-9a-f]+$//')
fi

if [ -z "$post" ] && printf '%s\n' "$d" | grep -Eq '^[0-9a-f]{7,40}$'; then
	# --always fell back to an abbreviated commit: no tag yet.
	v="0.0.0~git$d"
	[ -n "$dirty" ] && v="$v.$dirty"
	echo "$v"
	exit 0
fi

# A tag: drop a leading v, make a pre-release suffix sort before the
# release (1.3.0-rc1 -> 1.3.0~rc1), keep only characters both formats allow.
v=$(printf '%s\n' "$d" | sed -E 's/^[vV]//; s/-/~/g; s/[^0-9A-Za-z.+~]/./g')
case $v in
[0-9]*) ;;
*) v="0.0.0~$v" ;;
esac

extra=$post
if [ -n "$dirty" ]; then
	if [ -n "$extra" ]; then extra="$extra.$dirty"; else extra=$dirty; fi
fi
if [ -n "$extra" ]; then
	case $v in
	*+*) v="$v.$extra" ;;
	*) v="$v+$extra" ;;
	esac
fi
echo "$v"
