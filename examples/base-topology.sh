#!/usr/bin/env bash
# The OVN topology Kube-OVN would have created for the seed's examples, written with ovn-nbctl.
# Usage: base-topology.sh NB_CONNECTION
#   ovn-cluster (default VPC): ovn-default 10.16.0.0/16, join 100.64.0.0/16, Kube-OVN's own policies
#   vpc1 (custom VPC): subnet1 192.168.0.0/24 (+ fd00:192:168::/64 for the dual-stack variant)
set -euo pipefail
db=${1:?usage: base-topology.sh NB_CONNECTION}
nbctl() { ovn-nbctl --db="$db" "$@"; }
kids='external_ids:vendor=kube-ovn'

nbctl --may-exist lr-add ovn-cluster
nbctl --may-exist ls-add ovn-default -- set Logical_Switch ovn-default "$kids"
nbctl --may-exist lrp-add ovn-cluster ovn-cluster-ovn-default 0a:58:0a:10:00:01 10.16.0.1/16 fd00:10:16::1/64
nbctl --may-exist lsp-add ovn-default ovn-default-ovn-cluster -- \
  lsp-set-type ovn-default-ovn-cluster router -- lsp-set-addresses ovn-default-ovn-cluster router -- \
  lsp-set-options ovn-default-ovn-cluster router-port=ovn-cluster-ovn-default
nbctl --may-exist ls-add join -- set Logical_Switch join "$kids"
nbctl --may-exist lrp-add ovn-cluster ovn-cluster-join 0a:58:64:40:00:01 100.64.0.1/16
nbctl --may-exist lsp-add join join-ovn-cluster -- \
  lsp-set-type join-ovn-cluster router -- lsp-set-addresses join-ovn-cluster router -- \
  lsp-set-options join-ovn-cluster router-port=ovn-cluster-join
# Kube-OVN's policies on the default VPC (another writer's rows: vegd must leave them alone)
policy() { # priority match action [nexthop]
  nbctl --may-exist lr-policy-add ovn-cluster "$@"
  uuid=$(nbctl --bare --columns=_uuid find Logical_Router_Policy priority="$1" "match=\"$2\"")
  nbctl set Logical_Router_Policy "$uuid" "$kids"
}
policy 31000 "ip4.dst == 10.16.0.0/16" allow
policy 31000 "ip4.dst == 100.64.0.0/16" allow
policy 30000 "ip4.dst == 172.18.0.2" reroute 100.64.0.3
nbctl --may-exist lr-route-add ovn-cluster 0.0.0.0/0 100.64.0.1

nbctl --may-exist lr-add vpc1
nbctl --may-exist ls-add subnet1 -- set Logical_Switch subnet1 "$kids"
nbctl --may-exist lrp-add vpc1 vpc1-subnet1 0a:58:c0:a8:00:01 192.168.0.1/24 fd00:192:168::1/64
nbctl --may-exist lsp-add subnet1 subnet1-vpc1 -- \
  lsp-set-type subnet1-vpc1 router -- lsp-set-addresses subnet1-vpc1 router -- \
  lsp-set-options subnet1-vpc1 router-port=vpc1-subnet1
