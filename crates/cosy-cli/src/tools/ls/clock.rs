//! Modification times as `ls -l` prints them in the C locale (`Dec  4 23:17` within six
//! months, `May  9  2025` otherwise) in the local time zone: the TZif file `TZ` names
//! (`TZ=Asia/Tokyo`, `TZ=:/path`), else `/etc/localtime`; `TZ` set to a rule without a file
//! (`UTC0`, `JST-9`) is read as its fixed offset. Not done: the daylight-saving part of a rule
//! (`EST5EDT,M3.2.0,M11.1.0` with no file of that name) and the rule at the end of a TZif
//! file for times after its last transition (the last transition's offset is used).

use crate::tools::stat::Time;

/// A time zone: offsets from UTC, each from a transition time on.
#[derive(Clone, Debug, Default)]
pub struct Zone {
    /// Transition times (seconds since the epoch) and the offset (seconds east of UTC) from
    /// each on, in order.
    transitions: Vec<(i64, i32)>,
    /// The offset before the first transition (or always, without transitions).
    initial: i32,
}

fn be32(b: &[u8], o: usize) -> Option<i32> {
    Some(i32::from_be_bytes(b.get(o..o + 4)?.try_into().ok()?))
}

fn be64(b: &[u8], o: usize) -> Option<i64> {
    Some(i64::from_be_bytes(b.get(o..o + 8)?.try_into().ok()?))
}

impl Zone {
    /// UTC.
    pub fn utc() -> Zone {
        Zone::default()
    }

    /// A fixed offset east of UTC.
    pub fn fixed(offset: i32) -> Zone {
        Zone {
            transitions: Vec::new(),
            initial: offset,
        }
    }

    /// The zone of a TZif file (tzfile(5)): the 64-bit data of version 2 and later, else the
    /// 32-bit data.
    pub fn parse_tzif(b: &[u8]) -> Option<Zone> {
        let header = |at: usize| -> Option<[usize; 6]> {
            if b.get(at..at + 4)? != b"TZif" {
                return None;
            }
            let mut n = [0usize; 6];
            for (k, v) in n.iter_mut().enumerate() {
                *v = usize::try_from(be32(b, at + 20 + 4 * k)?).ok()?;
            }
            Some(n)
        };
        let [isut, isstd, leap, time, typ, chars] = header(0)?;
        let v1_len = time * 5 + typ * 6 + chars + leap * 8 + isstd + isut;
        let version = *b.get(4)?;
        let (at, wide) = if version >= b'2' {
            (44 + v1_len, true)
        } else {
            (0, false)
        };
        let [_, _, _, time, typ, _] = header(at)?;
        let data = at + 44;
        let tsize = if wide { 8 } else { 4 };
        let idx = data + time * tsize;
        let types = idx + time;
        let offset_of = |t: usize| -> Option<i32> { be32(b, types + 6 * t) };
        let initial = (0..typ)
            .find(|&t| b.get(types + 6 * t + 4) == Some(&0))
            .map_or(Some(0), offset_of)?;
        let mut transitions = Vec::with_capacity(time);
        for k in 0..time {
            let at_time = if wide {
                be64(b, data + 8 * k)?
            } else {
                i64::from(be32(b, data + 4 * k)?)
            };
            let t = usize::from(*b.get(idx + k)?);
            if t >= typ {
                return None;
            }
            transitions.push((at_time, offset_of(t)?));
        }
        Some(Zone {
            transitions,
            initial,
        })
    }

    /// A POSIX `TZ` rule's standard offset (`UTC0`, `JST-9`, `<+0530>-5:30`), if it is one.
    pub fn parse_rule(rule: &str) -> Option<Zone> {
        let b = rule.as_bytes();
        let mut i = 0;
        if b.first() == Some(&b'<') {
            i = rule.find('>')? + 1;
        } else {
            while i < b.len() && b[i].is_ascii_alphabetic() {
                i += 1;
            }
            if i < 3 {
                return None;
            }
        }
        let rest = &rule[i..];
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || matches!(c, '+' | '-' | ':')))
            .unwrap_or(rest.len());
        if end == 0 {
            return None;
        }
        let (num, sign) = match rest.as_bytes()[0] {
            b'-' => (&rest[1..end], 1),
            b'+' => (&rest[1..end], -1),
            _ => (&rest[..end], -1),
        };
        let mut parts = num.split(':').map(|p| p.parse::<i32>().ok());
        let h = parts.next()??;
        let m = parts.next().unwrap_or(Some(0))?;
        let s = parts.next().unwrap_or(Some(0))?;
        // POSIX counts west of UTC as positive; the zone's offset is east.
        Some(Zone::fixed(sign * (h * 3600 + m * 60 + s)))
    }

    /// The offset east of UTC at `t`.
    pub fn offset(&self, t: i64) -> i32 {
        match self.transitions.partition_point(|&(at, _)| at <= t) {
            0 => self.initial,
            k => self.transitions[k - 1].1,
        }
    }
}

/// Month abbreviations of the C locale.
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The civil date of day `z` since 1970-01-01 (H. Hinnant's algorithm): year, month (1–12),
/// day (1–31).
fn civil(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Half of the Gregorian year's seconds: what GNU ls counts as six months.
const SIX_MONTHS: i64 = 31_556_952 / 2;

/// Formats times as `ls -l` does.
#[derive(Debug)]
pub struct Clock {
    zone: Zone,
    now: Time,
}

impl Clock {
    /// A clock in `zone`, `now` being the current time.
    pub fn new(zone: Zone, now: Time) -> Clock {
        Clock { zone, now }
    }

    /// Appends `when` as `ls -l` prints it: `Mmm dd HH:MM` if it is within the six months
    /// before now, else `Mmm dd  YYYY` (a future time too).
    pub fn format(&mut self, when: Time, out: &mut Vec<u8>) {
        if when > self.now {
            // The file may have been changed since the clock was read: read it again.
            self.now = now();
        }
        let six_months_ago = Time {
            sec: self.now.sec - SIX_MONTHS,
            nsec: self.now.nsec,
        };
        let recent = six_months_ago < when && when < self.now;
        let local = when.sec + i64::from(self.zone.offset(when.sec));
        let (y, m, d) = civil(local.div_euclid(86_400));
        let secs = local.rem_euclid(86_400);
        out.extend_from_slice(MONTHS[(m - 1) as usize].as_bytes());
        let two = |out: &mut Vec<u8>, n: i64, pad: u8| {
            out.push(if n >= 10 { b'0' + (n / 10) as u8 } else { pad });
            out.push(b'0' + (n % 10) as u8);
        };
        out.push(b' ');
        two(out, i64::from(d), b' ');
        if recent {
            out.push(b' ');
            two(out, secs / 3600, b'0');
            out.push(b':');
            two(out, secs / 60 % 60, b'0');
        } else {
            out.extend_from_slice(format!("  {y}").as_bytes());
        }
    }
}

/// The current time.
pub fn now() -> Time {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => Time {
            sec: d.as_secs() as i64,
            nsec: d.subsec_nanos(),
        },
        Err(_) => Time::default(),
    }
}

/// Where the zone's TZif file is, by the value of `TZ` (`None`: unset), or the fixed zone a
/// rule gives.
pub enum Source {
    /// Read this TZif file; if it cannot be read, `fallback`.
    File(String, Zone),
    /// This zone.
    Zone(Zone),
}

/// What `TZ` (its value, `None` when unset) asks for.
pub fn source(tz: Option<&str>) -> Source {
    let Some(tz) = tz else {
        return Source::File("/etc/localtime".into(), Zone::utc());
    };
    let name = tz.strip_prefix(':').unwrap_or(tz);
    if name.is_empty() {
        return Source::Zone(Zone::utc());
    }
    let fallback = Zone::parse_rule(name).unwrap_or_else(Zone::utc);
    if name.starts_with('/') {
        return Source::File(name.into(), fallback);
    }
    if name.split('/').any(|c| c == "..") {
        return Source::Zone(fallback);
    }
    Source::File(format!("/usr/share/zoneinfo/{name}"), fallback)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(clock: &mut Clock, sec: i64) -> String {
        let mut out = Vec::new();
        clock.format(Time { sec, nsec: 0 }, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn recent_and_old_times_are_printed_as_ls_prints_them() {
        // 2026-12-04 23:17:00 UTC.
        let now = 1_796_426_220;
        let mut c = Clock::new(Zone::utc(), Time { sec: now, nsec: 0 });
        assert_eq!(fmt(&mut c, now - 60), "Dec  4 23:16");
        assert_eq!(fmt(&mut c, 0), "Jan  1  1970");
        assert_eq!(fmt(&mut c, -86_400), "Dec 31  1969");
        assert_eq!(fmt(&mut c, 4_102_444_800), "Jan  1  2100");
        let mut tokyo = Clock::new(Zone::fixed(9 * 3600), Time { sec: now, nsec: 0 });
        assert_eq!(fmt(&mut tokyo, now - 60), "Dec  5 08:16");
    }

    #[test]
    fn rules_give_their_standard_offset() {
        assert_eq!(Zone::parse_rule("UTC0").unwrap().offset(0), 0);
        assert_eq!(Zone::parse_rule("JST-9").unwrap().offset(0), 9 * 3600);
        assert_eq!(Zone::parse_rule("EST5").unwrap().offset(0), -5 * 3600);
        assert_eq!(
            Zone::parse_rule("<+0530>-5:30").unwrap().offset(0),
            5 * 3600 + 1800
        );
        assert!(Zone::parse_rule("X").is_none());
    }

    #[test]
    fn tzif_files_of_the_machine_parse() {
        let Ok(b) = std::fs::read("/usr/share/zoneinfo/Asia/Tokyo") else {
            eprintln!("no zoneinfo, skipping");
            return;
        };
        let z = Zone::parse_tzif(&b).unwrap();
        assert_eq!(z.offset(1_796_426_220), 9 * 3600);
    }
}
