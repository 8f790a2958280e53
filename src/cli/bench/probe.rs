//! Looking at a running `aura run` from outside: its HTTP endpoints and its resident memory.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A plain HTTP/1.0 GET; the status and body, or `None` when nothing answers.
pub async fn http_get(address: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Some((status, body))
}

/// The sum of a metric's samples whose labels contain `label` (all of them when empty), from
/// Prometheus text.
pub fn metric_sum(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let rest = series.strip_prefix(name)?;
            let matches = (rest.is_empty() || rest.starts_with('{')) && rest.contains(label);
            matches.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// A process's resident set size, from `/proc/<pid>/status`.
pub fn resident_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS in /proc/{pid}/status (Linux only)"))?;
    Ok(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_sum_adds_the_matching_series_only() {
        let text = "# HELP aura_records_in_total x\n\
                    aura_records_in_total{topic=\"a\"} 3\n\
                    aura_records_in_total{topic=\"b\"} 4\n\
                    aura_records_in_total_other 100\n";
        assert_eq!(
            metric_sum(text, "aura_records_in_total", "topic=\"b\""),
            4.0
        );
        assert_eq!(metric_sum(text, "aura_records_in_total", ""), 7.0);
    }

    #[test]
    fn resident_memory_of_this_process_is_readable() {
        assert!(resident_bytes(std::process::id()).unwrap() > 0);
    }
}
