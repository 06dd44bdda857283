#!/bin/sh
# mdadm --monitor --program: EVENT DEVICE [COMPONENT] on the console and stdout.
line="flexvisor-md: $1 $2${3:+ $3}"
echo "$line"
echo "$line" >/dev/console
