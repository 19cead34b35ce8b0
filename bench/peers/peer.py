"""Run a third-party HubSpot extractor against the leadsync sandbox, unchanged but for its host.

Used by `leadsync bench compare`, which writes this file next to the peer's virtualenv and runs

    <venv>/bin/python peer.py <system> catalog <base_url> <workdir>
    <venv>/bin/python peer.py <system> run     <base_url> <workdir>

`system` is `singer` (singer-io tap-hubspot), `meltano` (MeltanoLabs meltano-tap-hubspot) or
`airbyte` (airbyte-source-hubspot). `catalog` writes `<workdir>/config.json` and a catalog that
selects the contacts stream only (untimed setup); `run` runs the extractor's own entry point with
that config and catalog, its messages on stdout as usual.

Every HTTP request the extractor makes goes through `requests`' transport adapter, which this
file wraps: `https://api.hubapi.com` becomes the sandbox's loopback address, and any request to
another host is refused, so the extractor's traffic stays on 127.0.0.1. Nothing else in the
extractor is changed.

At exit the process's own resource usage (user and system CPU seconds, peak RSS) is written to
`<workdir>/rusage.json`, so the bench measures the extractor the same way it measures leadsync.
"""

import atexit
import json
import os
import resource
import sys
import time
from urllib.parse import urlsplit

HUBSPOT = "https://api.hubapi.com"
TOKEN = "sandbox-token"
START_DATE = "2000-01-01T00:00:00Z"


def redirect_to(base_url):
    import requests.adapters

    allowed = urlsplit(base_url).hostname
    if allowed not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"peer.py: the sandbox must be on loopback, got {base_url}")
    original = requests.adapters.HTTPAdapter.send

    def send(self, request, *args, **kwargs):
        if request.url.startswith(HUBSPOT):
            request.url = base_url + request.url[len(HUBSPOT):]
        host = urlsplit(request.url).hostname
        if host != allowed:
            raise requests.exceptions.ConnectionError(
                f"peer.py: refused a request off loopback: {request.url}"
            )
        return original(self, request, *args, **kwargs)

    requests.adapters.HTTPAdapter.send = send


def write_rusage(workdir, started):
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(os.path.join(workdir, "rusage.json"), "w") as f:
        json.dump(
            {
                "cpu_s": own.ru_utime + kids.ru_utime + own.ru_stime + kids.ru_stime,
                "user_s": own.ru_utime + kids.ru_utime,
                "system_s": own.ru_stime + kids.ru_stime,
                "max_rss_kib": max(own.ru_maxrss, kids.ru_maxrss),
                "wall_s": time.monotonic() - started,
            },
            f,
        )


def config_for(system):
    if system == "singer":
        return {"api_key": TOKEN, "start_date": START_DATE, "request_timeout": 300}
    if system == "meltano":
        return {"access_token": TOKEN, "start_date": START_DATE}
    if system == "airbyte":
        return {
            "credentials": {
                "credentials_title": "Private App Credentials",
                "access_token": TOKEN,
            },
            "start_date": START_DATE,
        }
    raise SystemExit(f"peer.py: unknown system {system!r} (singer, meltano or airbyte)")


def select_only_contacts(streams):
    """Select the contacts stream with every one of its fields (the data sales needs, as a team
    would configure it); deselect every other stream."""
    found = False
    for stream in streams:
        chosen = stream["tap_stream_id"] == "contacts"
        found = found or chosen
        for entry in stream.get("metadata", []):
            if chosen or not entry.get("breadcrumb"):
                entry["metadata"]["selected"] = chosen
    if not found:
        raise SystemExit("peer.py: the extractor's catalog has no contacts stream")
    return {"streams": [s for s in streams if s["tap_stream_id"] == "contacts"]}


def catalog(system, workdir):
    config = config_for(system)
    with open(os.path.join(workdir, "config.json"), "w") as f:
        json.dump(config, f)
    if system == "singer":
        import tap_hubspot

        tap_hubspot.CONFIG.update(config)
        stream = next(s for s in tap_hubspot.STREAMS if s.tap_stream_id == "contacts")
        schema, mdata = tap_hubspot.load_discovered_schema(stream)
        streams = [
            {"stream": "contacts", "tap_stream_id": "contacts", "schema": schema, "metadata": mdata}
        ]
        result = select_only_contacts(streams)
    elif system == "meltano":
        from tap_hubspot.tap import TapHubspot

        tap = TapHubspot(config=config, validate_config=True)
        result = select_only_contacts(tap.catalog_dict["streams"])
    else:
        result = {
            "streams": [
                {
                    "stream": {
                        "name": "contacts",
                        "json_schema": {},
                        "supported_sync_modes": ["full_refresh", "incremental"],
                    },
                    "sync_mode": "full_refresh",
                    "destination_sync_mode": "overwrite",
                }
            ]
        }
    with open(os.path.join(workdir, "catalog.json"), "w") as f:
        json.dump(result, f)


def run(system, workdir):
    config = os.path.join(workdir, "config.json")
    catalog_path = os.path.join(workdir, "catalog.json")
    if system == "singer":
        import tap_hubspot

        sys.argv = ["tap-hubspot", "--config", config, "--properties", catalog_path]
        tap_hubspot.main()
    elif system == "meltano":
        from tap_hubspot.tap import TapHubspot

        sys.argv = ["tap-hubspot", "--config", config, "--catalog", catalog_path]
        TapHubspot.cli()
    else:
        from source_hubspot.run import run as airbyte_run

        sys.argv = ["source-hubspot", "read", "--config", config, "--catalog", catalog_path]
        airbyte_run()


def main():
    started = time.monotonic()
    if len(sys.argv) != 5 or sys.argv[2] not in ("catalog", "run"):
        raise SystemExit("usage: peer.py <singer|meltano|airbyte> <catalog|run> <base_url> <workdir>")
    system, mode, base_url, workdir = sys.argv[1:]
    config_for(system)
    redirect_to(base_url.rstrip("/"))
    if mode == "catalog":
        catalog(system, workdir)
    else:
        atexit.register(write_rusage, workdir, started)
        run(system, workdir)


if __name__ == "__main__":
    main()
