#!/bin/sh
# Wait until `flexctl status` says every wanted service is ready (exit 0),
# then print it and /proc/mdstat on the console between markers.
out=/run/flexvisor/console-report.json
if [ ! -x /usr/bin/flexctl ]; then
	echo "flexvisor-report: flexctl is not in this image" >/dev/console
	exec sleep 2147483647
fi
# Not ready after 90 s (and again after 300 s): the states and the last
# log lines of every service, so a technician sees why on the console.
waiting() {
	{
		echo "flexvisor-report: still not ready after $1 s:"
		/usr/bin/flexctl status 2>&1 | sed 's/^/flexvisor-report:   /'
		for f in /etc/flexvisor/services.d/*.toml; do
			n=${f##*/}
			n=${n%.toml}
			/usr/bin/flexctl logs "$n" -n 8 2>/dev/null | sed "s/^/flexvisor-report: log $n: /"
		done
	} >/dev/console
}
# all_ready FILE: every wanted service in the status JSON is ready. A
# failed role hook alone makes `flexctl status` exit 1: the report still
# comes (the JSON shows the hook).
all_ready() {
	awk '/"state":/ { s = $2 } /"wanted": true/ { if (s != "\"ready\",") bad = 1 } END { exit bad }' "$1"
}
t=0
until /usr/bin/flexctl status --json >"$out" 2>/dev/null || { [ $? = 1 ] && all_ready "$out"; }; do
	sleep 1
	t=$((t + 1))
	case $t in 90 | 300) waiting $t ;; esac
done
{
	echo "flexvisor-report: status begin"
	cat "$out"
	echo
	echo "flexvisor-report: status end"
	echo "flexvisor-report: mdstat begin"
	cat /proc/mdstat
	echo "flexvisor-report: mdstat end"
	cat /run/flexvisor/bay-check 2>/dev/null | sed 's/^/flexvisor-report: bay-check /'
	# The hardware watchdog as the kernel sees it, and whether PID 1 holds it.
	for d in /sys/class/watchdog/watchdog*; do
		[ -e "$d/state" ] || continue
		echo "flexvisor-report: watchdog ${d##*/} identity=$(cat "$d/identity") state=$(cat "$d/state") timeout=$(cat "$d/timeout")"
	done
	for fd in /proc/1/fd/*; do
		l=$(readlink "$fd")
		case "$l" in /dev/watchdog*) echo "flexvisor-report: watchdog held by pid 1: $l" ;; esac
	done
	echo "flexvisor-report: watchdog end"
	# Ready: a system slot being tried becomes the default.
	/usr/bin/flexctl image bless 2>&1 | sed 's/^/flexvisor-report: slot /'
} >/dev/console
exec sleep 2147483647
