#!/bin/sh
# Start helper for the services whose configuration needs work at start
# (busybox sh): `run-service mariadb|redis|sip-proxy|billing|web-api`. The per-bay
# files come from the config partition (/config/services, generated from
# node.toml by flexvisor-image); secrets named in them as @secret:NAME@
# (or @list:NAME@, a comma-separated list as TOML strings) are filled in
# from the node's secrets file into /run, readable by the service only.
SVC=$1
SECRETS=/etc/flexvisor/secrets.toml
CFG=/config/services

say() { echo "run-service $SVC: $*" >&2; }
die() {
	say "FATAL: $*"
	exit 1
}

# secret NAME: the value of NAME (`NAME = value` line) in the secrets file.
secret() {
	[ -r "$SECRETS" ] || die "the secrets file $SECRETS (-> /config/secrets.toml) is missing: install the deployment's secrets there (or rebuild the image with flexctl image build --secrets)"
	key=$(printf '%s' "$1" | sed 's/[.]/\\./g')
	v=$(sed -n "s/^[[:space:]]*$key[[:space:]]*=[[:space:]]*//p" "$SECRETS" | tail -n 1)
	[ -n "$v" ] || die "$SECRETS has no entry \`$1\` (named by $2)"
	case "$v" in
	*"'"* | *'\'* | *'"'* | *'|'* | *'&'*) die "secret \`$1\` in $SECRETS contains a quote, backslash, | or &, which $2 cannot carry" ;;
	esac
	printf '%s' "$v"
}

# fill SRC DEST: SRC with the secrets filled in, written to DEST (mode 0600).
fill() {
	tmp="$2.tmp"
	(umask 077 && cp "$1" "$tmp") || die "cannot write $tmp"
	for n in $(grep -o '@secret:[^@]*@' "$1" | sort -u | sed 's/^@secret://; s/@$//'); do
		v=$(secret "$n" "$1") || exit 1
		sed -i "s|@secret:$n@|$v|g" "$tmp"
	done
	for n in $(grep -o '@list:[^@]*@' "$1" | sort -u | sed 's/^@list://; s/@$//'); do
		v=$(secret "$n" "$1") || exit 1
		v=$(printf '%s' "$v" | sed 's/[[:space:]]*,[[:space:]]*/", "/g; s/^/"/; s/$/"/')
		sed -i "s|@list:$n@|$v|g" "$tmp"
	done
	mv "$tmp" "$2"
}

case "$SVC" in
mariadb)
	CNF=$CFG/mariadb.cnf
	[ -r "$CNF" ] || die "$CNF is missing (rebuild the image or the config partition)"
	mkdir -p /data/mysql /run/mysqld || die "cannot create /data/mysql (is the data mirror mounted?)"
	chown mysql:mysql /data/mysql /run/mysqld
	chmod 0750 /data/mysql
	fill "$CFG/mariadb-init.sql" /run/mysqld/init.sql
	chown mysql:mysql /run/mysqld/init.sql
	# mariadbd reports readiness after dropping to mysql.
	[ -n "$NOTIFY_SOCKET" ] && chown mysql "$NOTIFY_SOCKET"
	if [ ! -e /data/mysql/.flexvisor-initialised ]; then
		say "first start: initialising /data/mysql"
		rm -rf /data/mysql/* /data/mysql/.[!.]*
		S=/usr/share/mysql
		{
			printf 'create database if not exists mysql;\nuse mysql;\n'
			cat $S/mysql_system_tables.sql $S/mysql_performance_tables.sql \
				$S/mysql_system_tables_data.sql $S/maria_add_gis_sp_bootstrap.sql
			printf 'CREATE DATABASE IF NOT EXISTS provisioning;\nUSE provisioning;\n'
			cat /usr/share/flexvisor/provisioning-schema.sql
		} | /usr/sbin/mariadbd --defaults-file="$CNF" --bootstrap --skip-log-bin \
			--log-warnings=0 >&2 || die "mariadbd --bootstrap failed"
		touch /data/mysql/.flexvisor-initialised
		chown -R mysql:mysql /data/mysql
		say "datadir initialised"
	fi
	exec /usr/sbin/mariadbd --defaults-file="$CNF" --init-file=/run/mysqld/init.sql
	;;
redis)
	CONF=$CFG/redis.conf
	[ -r "$CONF" ] || die "$CONF is missing (rebuild the image or the config partition)"
	mkdir -p /data/redis || die "cannot create /data/redis (is the data mirror mounted?)"
	chown redis:redis /data/redis
	chmod 0750 /data/redis
	# Runs as redis, readiness (sd_notify) included.
	[ -n "$NOTIFY_SOCKET" ] && chown redis "$NOTIFY_SOCKET"
	exec su -s /bin/sh redis -c "exec /usr/bin/redis-server $CONF"
	;;
sip-proxy)
	mkdir -p /data/spool/sip-proxy /run/sip-proxy || die "cannot create /data/spool/sip-proxy"
	fill "$CFG/sip-proxy.toml" /run/sip-proxy/sip-proxy.toml
	exec /usr/bin/sip-proxy --config /run/sip-proxy/sip-proxy.toml
	;;
billing)
	mkdir -p /data/spool/sip-proxy /data/billing /run/billing || die "cannot create /data/billing"
	fill "$CFG/billing.toml" /run/billing/billing.toml
	exec /usr/bin/billing --config /run/billing/billing.toml --notify-fd 3
	;;
web-api)
	mkdir -p /data/web-api /run/web-api || die "cannot create /data/web-api"
	fill "$CFG/web-api.toml" /run/web-api/web-api.toml
	if [ -r /config/tls/web-api.crt ] && [ -r /config/tls/web-api.key ]; then
		ln -sf /config/tls/web-api.crt /run/web-api/cert.pem
		ln -sf /config/tls/web-api.key /run/web-api/key.pem
	else
		if [ ! -s /data/web-api/self-signed.key ]; then
			say "WARNING: no /config/tls/web-api.crt and .key: making a self-signed certificate"
			(umask 077 && /usr/bin/web-api gen-cert --cert /data/web-api/self-signed.crt \
				--key /data/web-api/self-signed.key --name "$(hostname)") >&2 ||
				die "web-api gen-cert failed"
		fi
		ln -sf /data/web-api/self-signed.crt /run/web-api/cert.pem
		ln -sf /data/web-api/self-signed.key /run/web-api/key.pem
	fi
	exec /usr/bin/web-api --config /run/web-api/web-api.toml --notify-fd 3
	;;
*)
	die "unknown service (mariadb, redis, sip-proxy, billing, web-api)"
	;;
esac
