//! The chassis in qemu: every node of a chassis profile booted as a qemu VM
//! and wired like the real IBM Flex chassis, with the faults a chassis sees
//! injected and service continuity checked.
//!
//! The pieces, each usable and tested on its own:
//! - [`netns`]: the network namespace the harness makes (and removes) so
//!   the simulators' ports never touch the host;
//! - [`fabric`]: a small userspace Ethernet switch over unix datagram
//!   sockets (qemu's `-netdev dgram` backend): one fabric per EN2092 module
//!   plus the upstream network, with links the harness can cut;
//! - [`qmp`]: a QMP client (commands and events) for each VM;
//! - [`console`]: serial console capture and "wait for a line";
//! - [`ipmi`]: OpenIPMI `ipmi_sim` as the chassis management module (six
//!   PSUs and a redundancy sensor) and as each node's BMC (qemu external
//!   BMC, so `ipmitool chassis power` acts on the VM);
//! - [`snmp`]: the two EN2092 modules as `snmpd` agents whose IF-MIB uplink
//!   ports the harness flips;
//! - [`tap`]: the namespace's own port on the upstream network, where the
//!   CMM and switch agents answer the guests;
//! - [`vm`]: the qemu command line of one node;
//! - [`guest`]: what the VMs boot: the node images (from the image builder)
//!   or the harness's own probe guest used to test the machinery;
//! - [`world`]: the virtual chassis assembled from a profile;
//! - [`scenario`] and [`report`]: the fault scenarios, their runner and the
//!   result table / JSON; [`sip_call`]: the SIP call across a proxy failover.
//!
//! It does not hold node logic: what runs inside a node is the image's.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod cleanup;
pub mod cmm_snmp;
pub mod console;
pub mod fabric;
pub mod guest;
pub mod ipmi;
pub mod netns;
pub mod proc;
pub mod qmp;
pub mod report;
pub mod scenario;
pub mod sip_call;
pub mod snmp;
pub mod tap;
pub mod vm;
pub mod world;
