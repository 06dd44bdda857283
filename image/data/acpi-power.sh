#!/bin/sh
# Power button: ask flexvisor (PID 1) for an orderly poweroff.
kill -PWR 1
