"""Prometheus alert rules for the keel_base_* metrics (keel-base-metrics, textfile collector).

One rule group in the shape of the prometheus role's `prometheus_rules` entries; every host
has base, so Prometheus always loads it. `python -m roles.base.alerts` prints it as a rules file.
"""

BASE_ALERTS = {
    "name": "keel-base",
    "rules": [
        {
            "alert": "HostRebootRequired",
            "expr": "keel_base_reboot_required == 1",
            "for": "24h",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": ("{{ $labels.instance }} has needed a reboot for a day (an upgraded"
                            " package asks for it)"),
                "runbook": ("A package upgrade (kernel, libc, systemd) waits for a reboot to "
                            "take effect. First check: cat /run/reboot-required.pkgs, then "
                            "plan a reboot."),
            },
        },
        {
            "alert": "HostServicesOnDeletedLibraries",
            "expr": "keel_base_needrestart_services > 0",
            "for": "24h",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": ("{{ $labels.instance }}: {{ $value }} services still run upgraded "
                            "(deleted) libraries (needrestart)"),
                "runbook": ("Services still run code an upgrade replaced, so the fix is not "
                            "live in them. First check: needrestart -b -r l on the host, then "
                            "restart the services it lists."),
            },
        },
        {
            "alert": "HostPackageFilesChanged",
            "expr": "keel_base_debsums_changed_files > 0",
            "labels": {"severity": "critical"},
            "annotations": {
                "summary": ("{{ $labels.instance }}: {{ $value }} installed package files "
                            "differ from their checksums (debsums -c)"),
                "runbook": ("Installed package files no longer match their packages' "
                            "checksums: tampering or a manual edit. First check: debsums -c on"
                            " the host, then reinstall the package or investigate."),
            },
        },
        {
            "alert": "HostFileIntegrityChanged",
            "expr": "keel_base_aide_changed == 1",
            "labels": {"severity": "critical"},
            "annotations": {
                "summary": ("{{ $labels.instance }}: AIDE found changed files; review, then "
                            "`/usr/local/sbin/keel-base-metrics --accept`"),
                "runbook": ("Files AIDE watches changed outside package management. First "
                            "check: aide --config /etc/aide/keel.conf --check on the host; if "
                            "the change is expected, keel-base-metrics --accept."),
            },
        },
        {
            "alert": "HostIntegrityCheckFailing",
            "expr": ("keel_base_aide_ok == 0 or time() - keel_base_metrics_last_run_seconds > "
                     "2 * 86400"),
            "for": "1h",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": ("keel-base-metrics on {{ $labels.instance }} fails or has not run "
                            "for two days"),
                "runbook": ("The integrity and update-state check fails or stopped running, so"
                            " the other keel-base alerts are blind. First check: systemctl "
                            "status keel-base-metrics.service keel-base-metrics.timer and "
                            "journalctl -u keel-base-metrics."),
            },
        },
    ],
}

if __name__ == "__main__":
    import yaml

    print(yaml.safe_dump({"groups": [BASE_ALERTS]}, sort_keys=False, width=1000), end="")
