"""Prometheus alert rules for the keel_restic_* metrics (keel-restic, textfile collector). The
restic role declares them (`alerts()`), so Prometheus loads them where a host has the role."""

RESTIC_ALERTS = {
    "name": "keel-restic",
    "rules": [
        {
            "alert": "AppBackupFailed",
            "expr": "keel_restic_last_status == 0",
            "labels": {"severity": "critical"},
            "annotations": {
                "summary": "The last backup of {{ $labels.set }} on {{ $labels.instance }} failed",
                "runbook": "App data of that set is not being saved. First check: journalctl "
                           "-u keel-restic on the host (a failing pre_backup hook or an "
                           "unreachable repository).",
            },
        },
        {
            "alert": "AppBackupTooOld",
            "expr": "time() - keel_restic_last_success_timestamp_seconds > 26 * 3600",
            "for": "10m",
            "labels": {"severity": "critical"},
            "annotations": {
                "summary": "No backup of {{ $labels.set }} on {{ $labels.instance }} for "
                           "{{ $value | humanizeDuration }}",
                "runbook": "The daily backup did not succeed for over a day. First check: "
                           "systemctl list-timers keel-restic.timer and keel-restic snapshots.",
            },
        },
    ],
}
