"""Prometheus alert rules for the keel_pg_backup_* and keel_pg_archive_* metrics (written by
keel-pg-backup to the node exporter's textfile directory). The postgres role declares them
(`alerts()`), so Prometheus loads them whenever the inventory has db hosts."""

POSTGRES_BACKUP_ALERTS = {
    "name": "keel-postgres-backup",
    "rules": [
        {
            "alert": "PostgresBackupFailed",
            "expr": "keel_pg_backup_last_status == 0",
            "labels": {"severity": "critical"},
            "annotations": {
                "summary": "The last {{ $labels.type }} backup on {{ $labels.instance }} failed",
                "runbook": "A scheduled pgBackRest backup failed (WAL archiving may still work). "
                           "First check: journalctl -u keel-pg-backup@{{ $labels.type }} and "
                           "/var/log/pgbackrest/ on the host.",
            },
        },
        {
            "alert": "PostgresBackupTooOld",
            "expr": "time() - max without (type) "
                    "(keel_pg_backup_last_success_timestamp_seconds) > 26 * 3600",
            "for": "10m",
            "labels": {"severity": "critical"},
            "annotations": {
                "summary": "No backup on {{ $labels.instance }} for "
                           "{{ $value | humanizeDuration }}",
                "runbook": "No full or differential backup finished in 26 hours, so recovery "
                           "replays ever more WAL. First check: systemctl list-timers "
                           "'keel-pg-backup-*' and keel-pg-backup list on the host.",
            },
        },
        {
            "alert": "PostgresWalArchiveLagging",
            "expr": "keel_pg_archive_lag_seconds > 300",
            "for": "5m",
            "labels": {"severity": "critical"},
            "annotations": {
                "summary": "WAL on {{ $labels.instance }} waits {{ $value }}s to be archived",
                "runbook": "Point-in-time recovery only reaches the last archived WAL, and "
                           "pg_wal fills the disk. First check: select * from pg_stat_archiver "
                           "and the PostgreSQL log for archive_command errors.",
            },
        },
        {
            "alert": "PostgresBackupMetricsStale",
            "expr": "time() - keel_pg_backup_metrics_timestamp_seconds > 600",
            "for": "5m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "Backup metrics on {{ $labels.instance }} are not updated",
                "runbook": "The backup alerts above cannot fire. First check: systemctl status "
                           "keel-pg-backup-metrics.timer keel-pg-backup-metrics.service.",
            },
        },
    ],
}
