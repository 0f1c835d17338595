#!/bin/bash
# gdlab lab {lab}: the compromised instance's behaviour, rendered from scenario.toml.
# {start_delay_seconds} s after boot, then every {every_seconds} s: {count} pings,
# {interval_seconds} s apart, to the malicious instance's Elastic IP {target_ip}.
# Amazon Linux 2023 ships no cron, so a systemd timer does what the workshop's cron line did.
set -euo pipefail
cat > /etc/systemd/system/gdlab-ping.service <<'UNIT'
[Unit]
Description=gdlab lab {lab}: ping the malicious Elastic IP
[Service]
Type=oneshot
ExecStart=/usr/bin/ping -c {count} -i {interval_seconds} {target_ip}
SuccessExitStatus=1
UNIT
cat > /etc/systemd/system/gdlab-ping.timer <<'UNIT'
[Unit]
Description=gdlab lab {lab}: ping the malicious Elastic IP every {every_seconds} s
[Timer]
OnBootSec={start_delay_seconds}
OnUnitActiveSec={every_seconds}
AccuracySec=1
[Install]
WantedBy=timers.target
UNIT
systemctl daemon-reload
systemctl enable --now gdlab-ping.timer
