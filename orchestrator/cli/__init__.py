"""``sora-unmark``: command-line client of the service (submit videos, follow them, download results).

    sora-unmark process a.mp4 b.mp4 -o out/ [--url URL] [--api-key KEY] [--regions JSON]
    sora-unmark process a.mp4 -o out/ --local      # starts Triton + the orchestrator itself
    sora-unmark status TASK_ID
    sora-unmark list

It talks to the HTTP API of DESIGN.md only (httpx), so it works the same against a local service,
a container or a rented GPU. Exit codes: 0 all done, 1 a task failed, 2 bad usage or input,
3 service unreachable / not starting, 4 authentication refused, 130 interrupted.
"""


import logging

from rich.console import Console
from rich.markup import escape

from orchestrator.cli.client import DEFAULT_URL, ServiceClient, error_message
from orchestrator.cli.commands import VIDEO_SUFFIXES, build_parser, check_inputs, expand_inputs, run_list, run_status
from orchestrator.cli.errors import (
    EXIT_AUTH,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    CliError,
)
from orchestrator.cli.local import LocalStack
from orchestrator.cli.process import describe_outcome, output_names, run_process

__all__ = [
    "DEFAULT_URL", "EXIT_AUTH", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_UNREACHABLE", "EXIT_USAGE",
    "VIDEO_SUFFIXES", "CliError", "LocalStack", "ServiceClient", "build_parser", "check_inputs",
    "describe_outcome", "error_message", "expand_inputs", "main", "output_names", "run_list", "run_process",
    "run_status",
]


def main(argv: list[str] | None = None, *, console: Console | None = None,
         err_console: Console | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = console or Console(soft_wrap=True)
    err = err_console or Console(stderr=True, soft_wrap=True)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    stack: LocalStack | None = None
    try:
        if args.command == "process":
            check_inputs(args)
            url, key = args.url, args.api_key
            if args.local:
                stack = LocalStack(repository=args.model_repository, timeout_s=args.local_timeout,
                                   console=err).__enter__()
                url, key = stack.url, None
                console.print(f"local service ready at {url}")
            with ServiceClient(url, key) as client:
                return run_process(client, args.inputs, args.output_dir, regions=args.regions,
                                   detect=args.detect, method=args.method, poll_s=args.poll,
                                   console=console, err=err)
        with ServiceClient(args.url, args.api_key) as client:
            if args.command == "status":
                if args.token:
                    client.tokens[args.task_id] = args.token
                return run_status(client, args.task_id, as_json=args.json, console=console)
            return run_list(client, limit=args.limit, status=args.status, as_json=args.json, console=console)
    except CliError as exc:
        err.print(f"[red]error:[/] {escape(exc.message)}", highlight=False)
        return exc.exit_code
    except KeyboardInterrupt:
        err.print("interrupted; tasks already submitted keep running on the service"
                  + ("" if stack is None else " (the local service is being stopped)"))
        return EXIT_INTERRUPTED
    finally:
        if stack is not None:
            stack.stop()

