"""Command line entry point: `vegd apply | run | gateway | version`."""

from __future__ import annotations

import argparse
import sys

from vegd import __version__
from vegd.exits import EXIT_OK, EXIT_UNAVAILABLE


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "gateway":
        # The in-pod agent has its own argument parser and its own dependencies.
        from vegd.gateway.cli import main as gateway_main

        return gateway_main(argv[1:])
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad arguments, 0 on --help
        return int(exc.code or 0)
    if args.command == "version":
        print(__version__)
        return EXIT_OK
    if args.command == "apply":
        from vegd.apply import run_apply

        return run_apply(args)
    if args.command == "run":
        from vegd.run import run_controller

        return run_controller(args)
    parser.print_help()
    return EXIT_UNAVAILABLE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vegd", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("version", help="print the version")
    apply = sub.add_parser("apply", help="reconcile NB once from a directory of manifests")
    apply.add_argument("-f", "--filename", required=True, dest="directory",
                       help="directory (or file) of Kubernetes YAML manifests")
    apply.add_argument("--nb-connection", default=None,
                       help="OVN NB connection, as OVN writes it (unix:, tcp:, ssl:; "
                            "comma-separated members of a cluster)")
    apply.add_argument("--sb-connection", default=None,
                       help="OVN SB connection, used to find chassis by hostname")
    apply.add_argument("--config", default=None, help="ini configuration file")
    apply.add_argument("--vendor", default=None,
                       help="external_ids:vendor of every row vegd owns (default vegd)")
    apply.add_argument("--bfd-port-mode", choices=("stock", "kube-ovn"), default=None,
                       help="how the bfd@<vpc> port is arranged (see docs/bfd-port.md)")
    apply.add_argument("--no-prune", dest="prune", action="store_false",
                       help="keep rows of owners that are not in the manifests")
    apply.add_argument("--output", choices=("text", "json"), default="text")
    apply.add_argument("--dry-run", action="store_true",
                       help="validate and print what would change, write nothing (exit 0: "
                            "nothing to change, 1: changes pending or invalid input)")
    apply.add_argument("--timeout", type=float, default=None,
                       help="seconds to wait for the databases (default 10)")
    run = sub.add_parser("run", help="run the controller against a Kubernetes cluster")
    run.add_argument("--config", default=None, help="ini configuration file")
    run.add_argument("--kubeconfig", default=None,
                     help="kubeconfig file (default: $KUBECONFIG, else in-cluster credentials)")
    run.add_argument("--nb-connection", default=None, help="OVN NB connection")
    run.add_argument("--sb-connection", default=None, help="OVN SB connection")
    run.add_argument("--health-port", type=int, default=None,
                     help="port of /livez /readyz /metrics (0: none; default 10667)")
    sub.add_parser("gateway", help="the in-pod gateway agent (see `vegd gateway --help`)",
                   add_help=False)
    return parser


if __name__ == "__main__":
    sys.exit(main())
