#!/bin/sh
# logagent: deb preinst / rpm %pre. Creates the system user and group that
# run the service, before the files (the config is group logagent) land.
#
#   group logagent (system), user logagent (system, home /var/lib/logagent,
#   no login shell), member of adm where that group exists: on Debian adm
#   reads /var/log; RPM systems have adm too, though most of their logs are
#   0600 root, which the unit's CAP_DAC_READ_SEARCH covers.
# The user and group are kept on removal and purge: files they own may remain.
set -e

if ! getent group logagent >/dev/null 2>&1; then
	groupadd --system logagent
fi

if ! getent passwd logagent >/dev/null 2>&1; then
	shell=/bin/false
	for s in /usr/sbin/nologin /sbin/nologin; do
		if [ -x "$s" ]; then shell=$s; break; fi
	done
	useradd --system --gid logagent --home-dir /var/lib/logagent \
		--no-create-home --shell "$shell" --comment "logagent log shipper" logagent
fi

if getent group adm >/dev/null 2>&1; then
	case " $(id -nG logagent 2>/dev/null) " in
	*" adm "*) ;;
	*) usermod -a -G adm logagent ;;
	esac
fi

exit 0
