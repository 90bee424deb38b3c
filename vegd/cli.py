"""Command line entry point: `vegd apply | run | migrate | explain | status | config | gateway |
version`."""

from __future__ import annotations

import argparse
import sys

from vegd import __version__
from vegd.config import OPTIONS
from vegd.exits import EXIT_OK, EXIT_UNAVAILABLE


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("run", "apply"):
        from vegd import heap

        # Before the imports: they are start-up's first long-lived heap. `vegd run` ends the
        # window when ready; `vegd apply` is one pass over a heap that all lives until exit.
        heap.STARTUP.begin()
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
    if args.command == "migrate":
        from vegd.migrate import run_migrate

        return run_migrate(args)
    if args.command in ("explain", "status"):
        from vegd.explain import run_explain

        return run_explain(args)
    if args.command == "config":
        return _config(args.action, args.config)
    if args.command == "run":
        from vegd.run import run_controller

        return run_controller(args)
    parser.print_help()
    return EXIT_UNAVAILABLE


def _config(action: str, path: str | None) -> int:
    from vegd import config

    if action == "sample":
        sys.stdout.write(config.render_sample())
    elif action == "reference":
        sys.stdout.write(config.render_reference())
    else:
        try:
            settings = config.load_settings(path)
        except config.ConfigError as exc:
            print(f"vegd config: {exc}", file=sys.stderr)
            return EXIT_UNAVAILABLE
        for option in config.OPTIONS:
            print(f"{option.name} = {getattr(settings, option.name)}")
    return EXIT_OK


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
    run = sub.add_parser("run", help="run the controller against a Kubernetes cluster",
                         epilog="Every option of the configuration file is a flag too; "
                                "docs/configuration.md lists them.")
    run.add_argument("--config", default=None, help="ini configuration file")
    for option in OPTIONS:  # strings here: vegd.config converts and checks, naming the flag
        run.add_argument(option.flag, dest=option.name, default=None, metavar="VALUE",
                         help=f"{option.help} [{option.env_var}]")
    explain = sub.add_parser(
        "explain", help="which gateway a pod (or an address) egresses through, and why",
        description="vegd explain pod NAMESPACE/NAME | vegd explain --ip ADDRESS: the "
                    "gateway(s), the NB rows that select the source, the nexthops with their "
                    "BFD state, SNAT or forward and the egress addresses, or why not.")
    explain.add_argument("target", nargs="*", metavar="pod NAMESPACE/NAME")
    explain.add_argument("--ip", default=None, help="explain a source address instead of a pod")
    status = sub.add_parser("status", help="every gateway: instances, nexthops, BFD states, "
                                           "NB rows owned")
    for p in (explain, status):
        p.add_argument("-f", "--filename", dest="directory", default=None,
                       help="read the objects from this manifest directory, not the cluster")
        p.add_argument("--kubeconfig", default=None, help="kubeconfig (default: $KUBECONFIG, "
                                                           "else in-cluster credentials)")
        p.add_argument("--nb-connection", default=None, help="OVN NB connection")
        p.add_argument("--config", default=None, help="ini configuration file")
        p.add_argument("--output", choices=("text", "json"), default="text")
    config = sub.add_parser("config", help="the configuration: sample file, reference, check")
    config.add_argument("action", choices=("sample", "reference", "check"),
                        help="sample: print etc/vegd.conf; reference: print "
                             "docs/configuration.md; check: validate --config and the "
                             "environment, print the result")
    config.add_argument("--config", default=None, help="ini configuration file (check)")
    _migrate_arguments(sub.add_parser(
        "migrate", help="move gateways from another controller's NB rows to vegd's (dry run)"))
    sub.add_parser("gateway", help="the in-pod gateway agent (see `vegd gateway --help`)",
                   add_help=False)
    return parser


def _migrate_arguments(p: argparse.ArgumentParser) -> None:
    # here, not in vegd.migrate: building the parser must not import the Kubernetes client
    # and the NB libraries (`vegd apply` never needs the first; 17 MB and 0.2 s)
    p.add_argument("-f", "--filename", default=None, dest="directory",
                   help="manifests of the gateways as the other controller runs them (default: "
                        "read them from the API server)")
    p.add_argument("--kubeconfig", default=None,
                   help="kubeconfig (default: $KUBECONFIG, else in-cluster credentials)")
    p.add_argument("--delete-wait", type=float, default=60.0,
                   help="--back from the cluster: seconds to wait until the twins are gone "
                        "(default 60; still there: nothing restored, exit 1)")
    p.add_argument("gateways", nargs="*", metavar="NS/NAME",
                   help="only these gateways (default: every gateway in the manifests)")
    p.add_argument("--apply", action="store_true", help="do it (default: print the plan)")
    p.add_argument("--back", action="store_true",
                   help="restore the rows saved in --state and remove vegd's")
    p.add_argument("--state", required=True,
                   help="JSON file: written before the first change, read by --back")
    p.add_argument("--keep-old", action="store_true",
                   help="leave the other controller's rows in place (default: remove them)")
    p.add_argument("--bfd-wait", type=float, default=30.0,
                   help="seconds to wait for vegd's BFD sessions to come up before the old rows "
                        "go (default 30; not up in time: the old rows stay, exit 1)")
    p.add_argument("--objects-out", default=None, metavar="DIR",
                   help="write vegd's twin of each migrated gateway there (kubectl apply it)")
    p.add_argument("--group", default="vegd.io",
                   help="API group of the twins (vegd's [kubernetes] api_group)")
    p.add_argument("--from-vendor", default="kube-ovn",
                   help="external_ids:vendor of the other controller's rows")
    p.add_argument("--nb-connection", default=None)
    p.add_argument("--sb-connection", default=None)
    p.add_argument("--config", default=None)
    p.add_argument("--vendor", default=None)
    p.add_argument("--bfd-port-mode", choices=("stock", "kube-ovn"), default=None)
    p.add_argument("--timeout", type=float, default=None)


if __name__ == "__main__":
    sys.exit(main())
