//! What a comparison prints: the markdown tables, the goals met or missed, and the chart.

use super::*;

/// The comparison as markdown: one table of medians per point, then leadsync ÷ each peer.
pub fn markdown(points: &[Point]) -> String {
    let mut s = String::new();
    let mut keys: Vec<(u64, u64)> = points.iter().map(|p| (p.contacts, p.latency_ms)).collect();
    keys.dedup();
    s.push_str("| contacts | latency | system | runs | records/s | CPU s / 10k records | peak RSS MiB | requests | minimum | requests ÷ minimum | duplicates | wall s |\n");
    s.push_str("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for p in points {
        s.push_str(&format!(
            "| {} | {} ms | {} | {} | {:.0} | {:.3} | {:.0} | {} | {} | {:.2}× | {} | {:.1} |\n",
            thousands(p.contacts),
            p.latency_ms,
            p.system.label(),
            p.runs,
            p.records_per_s,
            p.cpu_per_10k,
            p.rss_mib,
            p.requests,
            p.minimum,
            p.requests as f64 / p.minimum.max(1) as f64,
            p.duplicates,
            p.wall_s,
        ));
    }
    s.push_str("\nleadsync ÷ peer (records/s: higher is better for leadsync; CPU per record, peak RSS and requests: lower is better):\n\n");
    s.push_str(
        "| contacts | latency | peer | records/s | CPU per record | peak RSS | requests |\n",
    );
    s.push_str("|---:|---:|---|---:|---:|---:|---:|\n");
    for &(contacts, latency) in &keys {
        let at: Vec<&Point> = points
            .iter()
            .filter(|p| p.contacts == contacts && p.latency_ms == latency)
            .collect();
        let Some(ours) = at.iter().find(|p| matches!(p.system, System::Leadsync)) else {
            continue;
        };
        for peer in at.iter().filter(|p| matches!(p.system, System::Peer(_))) {
            s.push_str(&format!(
                "| {} | {} ms | {} | {:.1}× | {:.3}× | {:.2}× | {:.2}× |\n",
                thousands(contacts),
                latency,
                peer.system.label(),
                ours.records_per_s / peer.records_per_s,
                ours.cpu_per_10k / peer.cpu_per_10k,
                ours.rss_mib / peer.rss_mib,
                ours.requests as f64 / peer.requests.max(1) as f64,
            ));
        }
    }
    s
}

/// The goals of issue 8, checked against the fastest peer at each point.
pub fn goals(points: &[Point]) -> Vec<String> {
    let mut out = Vec::new();
    let mut keys: Vec<(u64, u64)> = points.iter().map(|p| (p.contacts, p.latency_ms)).collect();
    keys.dedup();
    for (contacts, latency) in keys {
        let at: Vec<&Point> = points
            .iter()
            .filter(|p| p.contacts == contacts && p.latency_ms == latency)
            .collect();
        let Some(ours) = at.iter().find(|p| matches!(p.system, System::Leadsync)) else {
            continue;
        };
        let fastest = at
            .iter()
            .filter(|p| matches!(p.system, System::Peer(_)))
            .max_by(|a, b| a.records_per_s.total_cmp(&b.records_per_s));
        let mut line = format!("{} contacts, {latency} ms: ", thousands(contacts));
        if let Some(peer) = fastest {
            let speed = ours.records_per_s / peer.records_per_s;
            let cpu = ours.cpu_per_10k / peer.cpu_per_10k;
            line.push_str(&format!(
                "{speed:.1}× the fastest peer ({}) records/s [{}], {cpu:.3}× its CPU per record [{}]; ",
                peer.system.label(),
                met(speed >= SPEED_GOAL),
                met(cpu <= CPU_GOAL),
            ));
        }
        let ratio = ours.requests as f64 / ours.minimum.max(1) as f64;
        line.push_str(&format!(
            "requests {ratio:.2}× the minimum [{}]",
            met(ratio <= 1.1)
        ));
        if contacts >= 100_000 {
            line.push_str(&format!(
                "; peak RSS {:.0} MiB [{}]",
                ours.rss_mib,
                met(ours.rss_mib * 1.048_576 <= 128.0)
            ));
        }
        out.push(line);
    }
    out
}

/// Issue 20's goals against the fastest extractor at every point: at least this many times
/// its records per second…
pub(super) const SPEED_GOAL: f64 = 6.0;
/// …at no more than this share of its CPU per record.
pub(super) const CPU_GOAL: f64 = 0.08;

pub fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A horizontal bar chart of records/s by system, one group per (contacts, latency), as SVG.
pub fn chart_svg(points: &[Point]) -> String {
    let mut keys: Vec<(u64, u64)> = points.iter().map(|p| (p.contacts, p.latency_ms)).collect();
    keys.dedup();
    let systems: Vec<String> = {
        let mut v: Vec<String> = Vec::new();
        for p in points {
            let l = p.system.label();
            if !v.contains(&l) {
                v.push(l);
            }
        }
        v
    };
    let colors = ["#1b7f5b", "#5b6bbf", "#c9822b", "#b5485d", "#777777"];
    let (left, bar, gap, width) = (300.0, 16.0, 14.0, 560.0);
    let max = points
        .iter()
        .map(|p| p.records_per_s)
        .fold(1.0_f64, f64::max);
    let group_h = systems.len() as f64 * bar + gap + 18.0;
    let height = 70.0 + keys.len() as f64 * group_h + 20.0;
    let total_w = left + width + 130.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{total_w}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"22\" font-size=\"15\" font-weight=\"bold\">HubSpot contacts pulled per second (median; higher is better)</text>\n\
         <text x=\"10\" y=\"42\" fill=\"#555\">Same sandbox, same data; each system in its own process. Generated by leadsync-bench compare.</text>\n"
    );
    let mut y = 62.0;
    for (contacts, latency) in &keys {
        svg.push_str(&format!(
            "<text x=\"10\" y=\"{:.0}\" font-weight=\"bold\">{} contacts, {latency} ms latency</text>\n",
            y + 12.0,
            thousands(*contacts)
        ));
        y += 18.0;
        for (si, system) in systems.iter().enumerate() {
            let Some(p) = points.iter().find(|p| {
                p.contacts == *contacts && p.latency_ms == *latency && &p.system.label() == system
            }) else {
                continue;
            };
            let w = (p.records_per_s / max * width).max(1.0);
            svg.push_str(&format!(
                "<text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"end\">{system}</text>\n\
                 <rect x=\"{left}\" y=\"{:.0}\" width=\"{w:.1}\" height=\"{:.0}\" fill=\"{}\"/>\n\
                 <text x=\"{:.0}\" y=\"{:.0}\">{}</text>\n",
                left - 8.0,
                y + bar - 4.0,
                y + 1.0,
                bar - 2.0,
                colors[si % colors.len()],
                left + w + 6.0,
                y + bar - 4.0,
                thousands(p.records_per_s.round() as u64),
            ));
            y += bar;
        }
        y += gap;
    }
    svg.push_str("</svg>\n");
    svg
}
