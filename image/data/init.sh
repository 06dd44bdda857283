#!/bin/sh
# flexvisor initramfs shim (busybox sh). It is not an init system: it loads
# the boot modules, assembles or (first boot) creates the RAID-1 arrays,
# mounts the system slot and the config and data arrays, checks the bay,
# then execs flexvisor as PID 1 on the system slot. See docs/image.md.
export PATH=/sbin:/bin
/bin/busybox mkdir -p /proc /sys /dev /newroot /cfg
/bin/busybox mount -t devtmpfs devtmpfs /dev
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys


say() { echo "flexvisor-init: $*"; }
die() {
	echo "flexvisor-init: FATAL: $*"
	echo "flexvisor-init: dropping to a shell on the console"
	exec sh
}

SLOT=a
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	flexvisor.slot=*) SLOT="${arg#*=}" ;;
	flexvisor.shell) SHELL_ONLY=1 ;;
	esac
done

say "loading boot modules"
while read -r m; do
	[ -n "$m" ] || continue
	out=$(insmod "/lib/modules/$m" 2>&1) || case "$out" in
		*"File exists"* | *"No such device"*) ;; # built in; CPU lacks the feature
		*) say "insmod $m: $out" ;;
	esac
done </lib/modules/boot.list
[ -n "$SHELL_ONLY" ] && exec sh

# part NAME: the first block device (sorted) whose GPT partition name is NAME.
part() {
	for u in /sys/class/block/*/uevent; do
		if grep -qx "PARTNAME=$1" "$u"; then
			sed -n 's/^DEVNAME=/\/dev\//p' "$u"
			return 0
		fi
	done
	return 1
}
# disk_of /dev/vda2 -> vda
disk_of() { basename "$(dirname "$(readlink -f "/sys/class/block/${1#/dev/}")")"; }

i=0
until SYS=$(part "fv-system-$SLOT"); do
	i=$((i + 1))
	[ $i -gt 200 ] && die "no partition named fv-system-$SLOT after 20 s (disk driver missing?)"
	sleep 0.1
done
BOOT=$(disk_of "$SYS")
say "system slot $SLOT is $SYS on disk $BOOT"

mdadm --assemble --scan --run --config=/etc/mdadm.conf >/dev/null 2>&1

if [ -b /dev/md0 ] && grep -q '^md0 ' /proc/mdstat; then
	FIRST=
	CFG=/dev/md0
else
	FIRST=1
	CFG=$(part fv-config) || die "no fv-config partition"
fi
mount -t vfat -o ro "$CFG" /cfg || die "cannot mount the config partition $CFG"
EXPECTED_BAY=$(cat /cfg/bay 2>/dev/null)

# System slot: /config/slot (default=, try=, tries=; rules in
# image/src/slots.rs) over the command line's default. A slot being tried
# boots while it has tries left; with none left it failed to reach ready
# (flexctl image bless was never run): roll back to the default.
if [ -z "$FIRST" ] && [ -r /cfg/slot ]; then
	sv() { sed -n "s/^$1=//p" /cfg/slot | tail -n 1; }
	DEF=$(sv default)
	TRY=$(sv try)
	TRIES=$(sv tries)
	[ -n "$DEF" ] || DEF=$SLOT
	SLOT=$DEF
	if [ -n "$TRY" ]; then
		mount -o remount,rw /cfg
		if [ "${TRIES:-1}" -gt 0 ]; then
			SLOT=$TRY
			printf 'default=%s\ntry=%s\ntries=%s\n' "$DEF" "$TRY" $((${TRIES:-1} - 1)) >/cfg/slot
			say "trying the new system in slot $TRY (once; the default stays $DEF until it is ready)"
		else
			printf 'default=%s\nfailed=%s\n' "$DEF" "$TRY" >/cfg/slot
			say "ROLLBACK: slot $TRY did not reach ready; booting slot $DEF"
		fi
		sync
		mount -o remount,ro /cfg
	fi
	SYS=$(part "fv-system-$SLOT") || die "no partition fv-system-$SLOT"
	say "booting system slot $SLOT ($SYS)"
fi

if [ -n "$FIRST" ]; then
	say "first boot: building the RAID-1 mirrors"
	SECOND=
	for d in /sys/block/*; do
		n=${d##*/}
		case "$n" in loop* | ram* | md* | sr* | "$BOOT") continue ;; esac
		[ "$(cat "$d/removable" 2>/dev/null)" = 1 ] && continue
		ls "$d" | grep -q "^$n" && continue # has partitions
		if [ "$(head -c 1048576 "/dev/$n" | tr -d '\000' | wc -c)" = 0 ]; then
			SECOND=$n
			break
		fi
	done
	CONF_DEV=$CFG
	DATA_DEV=$(part fv-data) || die "no fv-data partition"
	# fv-data grows to each disk's end before the mirror is built:
	# `flexctl image grow-data` (static, from the system slot).
	if mount -t erofs -o ro "$SYS" /newroot; then
		cp /newroot/usr/bin/flexctl /bin/flexctl 2>/dev/null
		umount /newroot
	fi
	grow() {
		[ -x /bin/flexctl ] || return 0
		if out=$(/bin/flexctl image grow-data "/dev/$1" 2>&1); then
			say "$out"
		else
			say "WARNING: $out"
		fi
	}
	C2=missing
	D2=missing
	if [ -n "$SECOND" ]; then
		say "partitioning the empty disk $SECOND like $BOOT"
		. /cfg/disk2.env
		dd if=/cfg/disk2-primary.gpt of="/dev/$SECOND" bs=512 conv=fsync 2>/dev/null
		dd if=/cfg/disk2-backup.gpt of="/dev/$SECOND" bs=512 seek="$BACKUP_LBA" conv=fsync 2>/dev/null
		grow "$SECOND"
		blockdev --rereadpt "/dev/$SECOND"
		i=0
		while [ ! -e "/sys/block/$SECOND/${SECOND}1" ] && [ ! -e "/sys/block/$SECOND/${SECOND}p1" ]; do
			i=$((i + 1))
			[ $i -gt 100 ] && die "partitions of $SECOND did not appear"
			sleep 0.1
		done
		pn() { for p in /sys/block/"$SECOND"/"$SECOND"*; do grep -qx "PARTNAME=$1" "$p/uevent" && { echo "/dev/${p##*/}"; return; }; done; }
		say "copying the ESP and system slot $SLOT to $SECOND"
		dd if="$(part fv-esp)" of="$(pn fv-esp)" bs=1M conv=fsync 2>/dev/null
		dd if="$SYS" of="$(pn "fv-system-$SLOT")" bs=1M conv=fsync 2>/dev/null
		C2=$(pn fv-config)
		D2=$(pn fv-data)
	else
		say "WARNING: no empty second disk: the mirrors start degraded"
	fi
	umount /cfg
	grow "$BOOT"
	blockdev --rereadpt "/dev/$BOOT" || say "WARNING: cannot re-read the partition table of $BOOT"
	i=0
	until [ -b "$DATA_DEV" ] && [ -b "$CONF_DEV" ] && [ -b "$SYS" ]; do
		i=$((i + 1))
		[ $i -gt 100 ] && die "partitions of $BOOT did not come back"
		sleep 0.1
	done
	# metadata 1.0 keeps the superblock at the end: the config filesystem
	# built into the image stays readable from sector 0.
	mdadm --create /dev/md0 --run --quiet --metadata=1.0 --level=1 --raid-devices=2 \
		--name=config --homehost=flexvisor "$CONF_DEV" "$C2" || die "mdadm --create md0 failed"
	mdadm --create /dev/md1 --run --quiet --metadata=1.2 --level=1 --raid-devices=2 \
		--name=data --homehost=flexvisor "$DATA_DEV" "$D2" || die "mdadm --create md1 failed"
	# Full path: busybox sh prefers its own (ext2-only) mke2fs applet.
	/sbin/mke2fs -q -t ext4 -L fv-data /dev/md1 || die "mke2fs on md1 failed"
	CFG=/dev/md0
else
	umount /cfg
fi

mount -t erofs -o ro "$SYS" /newroot || die "cannot mount $SYS"
mount -t vfat -o rw,noatime "$CFG" /newroot/config || die "cannot mount $CFG on /config"
if [ -b /dev/md1 ]; then
	mount -t ext4 -o rw /dev/md1 /newroot/data || say "WARNING: cannot mount /dev/md1 on /data"
fi

# modparams NAME: the `NAME.param=value` words of the kernel command line
# as `param=value` (what modprobe does; insmod alone does not).
modparams() {
	for arg in $(cat /proc/cmdline); do
		case "$arg" in "$1".*=*) echo "${arg#"$1".}" ;; esac
	done
}

# The role's modules (bonding, NICs, power button, IPMI, watchdog) before the
# bay check (IPMI) and before flexvisor brings up the network.
while read -r m; do
	[ -n "$m" ] || continue
	name=${m##*/}
	name=${name%%.ko*}
	# shellcheck disable=SC2046 # one word per parameter
	out=$(insmod "/newroot$m" $(modparams "$(echo "$name" | tr - _)") 2>&1) || case "$out" in
		*"File exists"* | *"No such device"*) ;;
		*) say "insmod $m: $out" ;;
	esac
done </newroot/etc/flexvisor/modules.load

# Bay check. The chassis knows the bay: ask the node's BMC over IPMI
# (`flexctl image bay`: PICMG site number, else a FRU field bay=N), else the
# SMBIOS chassis asset tag "bay=N" (qemu -smbios type=3,asset=bay=N);
# flexvisor.bay=N on the kernel command line overrides both.
DETECTED_BAY=
BAY_SOURCE=
if [ -e /sys/class/ipmi/ipmi0 ]; then
	i=0
	while [ ! -c /dev/ipmi0 ] && [ $i -lt 30 ]; do
		sleep 0.1
		i=$((i + 1))
	done
fi
if [ -c /dev/ipmi0 ]; then
	if out=$(/newroot/usr/bin/flexctl image bay --device /dev/ipmi0 2>&1); then
		DETECTED_BAY=$(echo "$out" | sed -n 's/^bay=\([0-9][0-9]*\) .*/\1/p')
		BAY_SOURCE=$(echo "$out" | sed -n 's/.*source=//p')
		say "the BMC reports bay $DETECTED_BAY ($BAY_SOURCE)"
	else
		say "the BMC does not report the bay ($out); trying SMBIOS"
	fi
fi
if [ -z "$DETECTED_BAY" ]; then
	tag=$(cat /sys/class/dmi/id/chassis_asset_tag 2>/dev/null)
	case "$tag" in *bay=*)
		DETECTED_BAY=$(echo "$tag" | sed -n 's/.*bay=0*\([0-9][0-9]*\).*/\1/p')
		BAY_SOURCE=smbios
		;;
	esac
fi
for arg in $(cat /proc/cmdline); do
	case "$arg" in flexvisor.bay=*)
		DETECTED_BAY="${arg#*=}"
		BAY_SOURCE=cmdline
		;;
	esac
done
if [ -z "$DETECTED_BAY" ]; then
	BAY_STATUS=unknown
	say "WARNING: cannot tell which bay this node is in (no BMC answer, no SMBIOS chassis asset tag bay=N)"
elif [ "$DETECTED_BAY" = "$EXPECTED_BAY" ]; then
	BAY_STATUS=ok
	say "bay $DETECTED_BAY matches the image ($BAY_SOURCE)"
else
	BAY_STATUS=mismatch
	for _ in 1 2 3; do
		echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
		echo "!!! flexvisor: WRONG BAY: this image is for bay $EXPECTED_BAY, the node is in bay $DETECTED_BAY ($BAY_SOURCE)"
		echo "!!! it will NOT take the pair's shared addresses."
	done
	echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
fi
# The system slot is read-only: /var (flexvisor's logs) lives in memory.
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /newroot/var
mkdir -p /newroot/var/log
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /newroot/run
mkdir -p /newroot/run/flexvisor
echo "$SLOT" >/newroot/run/flexvisor/slot
printf 'status=%s\nexpected=%s\ndetected=%s\nsource=%s\n' "$BAY_STATUS" "$EXPECTED_BAY" "$DETECTED_BAY" "$BAY_SOURCE" >/newroot/run/flexvisor/bay-check
export FLEXVISOR_BAY_CHECK="$BAY_STATUS" FLEXVISOR_BAY_EXPECTED="$EXPECTED_BAY" FLEXVISOR_BAY_DETECTED="$DETECTED_BAY"
echo "flexvisor-init: mdstat:"
cat /proc/mdstat

# The hardware watchdog: the first registered (i6300esb, iTCO, IPMI, or
# softdog as the fallback). `flexvisor.watchdog=off` runs without one,
# `flexvisor.watchdog=/dev/watchdogN` picks another.
WATCHDOG=/dev/watchdog
for arg in $(cat /proc/cmdline); do
	case "$arg" in flexvisor.watchdog=*) WATCHDOG="${arg#*=}" ;; esac
done
set --
if [ "$WATCHDOG" != off ] && [ -c "$WATCHDOG" ]; then
	wd=${WATCHDOG##*/}
	[ "$wd" = watchdog ] && wd=watchdog0
	say "hardware watchdog $WATCHDOG: $(cat "/sys/class/watchdog/$wd/identity" 2>/dev/null), timeout $(cat "/sys/class/watchdog/$wd/timeout" 2>/dev/null) s"
	set -- --watchdog "$WATCHDOG"
else
	say "no hardware watchdog ($WATCHDOG)"
fi
for m in dev proc sys; do mount --move "/$m" "/newroot/$m"; done
say "exec /sbin/flexvisor $* on slot $SLOT"
exec switch_root /newroot /sbin/flexvisor "$@"
