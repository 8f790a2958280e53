//! Run summaries: a readable table, a latency histogram drawn in the terminal, and JSON.

use hdrhistogram::Histogram;

/// A latency histogram as text bars, one per power-of-two bucket of microseconds.
pub fn histogram_plot(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "  (no samples)\n".into();
    }
    let mut buckets: Vec<(u64, u64)> = Vec::new();
    let mut upper = 1u64;
    while upper / 2 <= h.max() {
        let lower = upper / 2;
        let count: u64 = h
            .iter_recorded()
            .filter(|v| v.value_iterated_to() >= lower && v.value_iterated_to() < upper)
            .map(|v| v.count_at_value())
            .sum();
        buckets.push((upper, count));
        upper *= 2;
    }
    let first = buckets.iter().position(|b| b.1 > 0).unwrap_or(0);
    let peak = buckets.iter().map(|b| b.1).max().unwrap_or(1).max(1);
    let mut out = String::new();
    for (upper, count) in &buckets[first..] {
        let width = (count * 40).div_ceil(peak) as usize;
        out.push_str(&format!(
            "  < {:>8} µs | {:<40} {}\n",
            upper,
            "█".repeat(width),
            count
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plot_has_a_bar_per_occupied_range() {
        let mut h = Histogram::<u64>::new(3).unwrap();
        for v in [3, 3, 3, 100] {
            h.record(v).unwrap();
        }
        let plot = histogram_plot(&h);
        assert!(plot.contains("<        4 µs"), "{plot}");
        assert!(plot.contains("<      128 µs"), "{plot}");
        assert!(plot.lines().next().unwrap().ends_with(" 3"), "{plot}");
    }
}
