//! INCRBYFLOAT's arithmetic, done as Redis does it on x86-64: C `long double` (the x87 80-bit
//! format: a 64-bit significand, exponents down to 2^-16445), parsed by glibc's `strtold` and
//! printed with `%.17Lf`, trailing zeros trimmed.
//!
//! Emulated in software, exactly: parsing and printing are correctly rounded (as glibc's are)
//! through a small big-integer type, and addition rounds to nearest-even once. So `0.1 + 0.2`
//! gives `0.3` and `3e17 + 1.5` gives `300000000000000001.5`, byte for byte what redis-server
//! 7.0 prints, on every architecture (an aarch64 Redis, whose `long double` is 128-bit, does
//! not). An f64 would print `0.30000000000000004`; a decimal type would disagree with Redis
//! wherever binary rounding shows within 17 decimals.

use std::cmp::Ordering;

/// Redis's `MAX_LONG_DOUBLE_CHARS`: longer arguments are not a valid float.
const MAX_CHARS: usize = 5 * 1024;
/// The exponent of the smallest subnormal: every value is a multiple of 2^MIN_EXP.
const MIN_EXP: i64 = -16445;
/// Every finite value is below 2^MAX_BITS.
const MAX_BITS: i64 = 16384;

/// An 80-bit extended value: `±significand × 2^exp` with `significand < 2^64`, or infinity.
/// There is no NaN: what would produce one is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ext {
    Finite {
        neg: bool,
        significand: u64,
        exp: i64,
    },
    Inf {
        neg: bool,
    },
}

const ZERO: Ext = zero(false);

/// Zero with a sign (`-0` reads as itself; sums print it as `0`).
const fn zero(neg: bool) -> Ext {
    Ext::Finite {
        neg,
        significand: 0,
        exp: MIN_EXP,
    }
}

impl Ext {
    /// Zero, the value of a missing key.
    pub(super) const ZERO: Ext = ZERO;

    /// What Redis's `string2ld` makes of `arg`: `None` for "value is not a valid float"
    /// (empty, too long, leading space, trailing garbage, NaN, or out of range), infinity for
    /// `inf`/`infinity`, as `strtold` reads them.
    pub(super) fn parse(arg: &[u8]) -> Option<Ext> {
        if arg.is_empty() || arg.len() >= MAX_CHARS {
            return None;
        }
        // strtold must read every byte: a NUL ends its string early, which Redis refuses too.
        let text = arg;
        if text
            .first()
            .is_some_and(|&c| c == b' ' || (b'\t'..=b'\r').contains(&c))
        {
            return None;
        }
        let (neg, body) = match text {
            [b'-', rest @ ..] => (true, rest),
            [b'+', rest @ ..] => (false, rest),
            _ => (false, text),
        };
        if body.eq_ignore_ascii_case(b"inf") || body.eq_ignore_ascii_case(b"infinity") {
            return Some(Ext::Inf { neg });
        }
        let hex = matches!(body, [b'0', b'x' | b'X', c, ..] if c.is_ascii_hexdigit() || *c == b'.');
        let (mantissa, exp10, exp2) = if hex {
            Number::read(&body[2..], 16)?
        } else {
            Number::read(body, 10)?
        };
        mantissa.value(neg, exp10, exp2)
    }

    /// `self + other`, rounded to nearest-even; `None` for NaN (`inf + -inf`).
    pub(super) fn add(self, other: Ext) -> Option<Ext> {
        let (a, b) = match (self, other) {
            (Ext::Inf { neg: x }, Ext::Inf { neg: y }) => return (x == y).then_some(self),
            (Ext::Inf { .. }, _) => return Some(self),
            (_, Ext::Inf { .. }) => return Some(other),
            (Ext::Finite { exp: ea, .. }, Ext::Finite { exp: eb, .. }) if ea >= eb => (self, other),
            _ => (other, self),
        };
        let (
            Ext::Finite {
                neg: na,
                significand: ma,
                exp: ea,
            },
            Ext::Finite {
                neg: nb,
                significand: mb,
                exp: eb,
            },
        ) = (a, b)
        else {
            return None;
        };
        match (ma, mb) {
            (0, 0) => return Some(zero(na && nb)),
            (_, 0) => return Some(a),
            (0, _) => return Some(b),
            _ => {}
        }
        // 62 guard bits under a's significand; b's bits below them only matter as "a little
        // more" (sticky), and the rounding point is always far above them.
        let big = u128::from(ma) << 62;
        let small = u128::from(mb) << 62;
        let d = ea - eb;
        let (shifted, lost) = match u32::try_from(d) {
            Ok(d) if d < 127 => (small >> d, small & ((1u128 << d) - 1) != 0),
            _ => (0, true),
        };
        let (neg, sum) = if na == nb {
            (na, big + shifted)
        } else if big >= shifted {
            // With `lost` the exact difference lies just below big - shifted.
            (na, big - shifted - u128::from(lost))
        } else {
            (nb, shifted - big)
        };
        if sum == 0 && !lost {
            return Some(ZERO);
        }
        Some(round(neg, sum, ea - 62, lost))
    }

    /// The value as Redis 7.0's INCRBYFLOAT prints it (`%.17Lf`, trailing zeros and point
    /// trimmed, `-0` as `0`).
    pub(super) fn to_text(self) -> Vec<u8> {
        let (neg, significand, exp) = match self {
            Ext::Inf { neg } => {
                return if neg {
                    b"-inf".to_vec()
                } else {
                    b"inf".to_vec()
                }
            }
            Ext::Finite {
                neg,
                significand,
                exp,
            } => (neg, significand, exp),
        };
        let (integer, fraction) = if exp >= 0 {
            // An integer: no fraction to print.
            let mut n = Big::from_u64(significand);
            n.shl(exp as usize);
            (n.into_decimal(), 0)
        } else {
            // Round significand × 2^exp × 10^17 to an integer, ties to even (as glibc does).
            let scaled = u128::from(significand) * u128::from(E17);
            let shift = (-exp) as u32;
            let rounded = if shift >= 127 {
                0
            } else {
                let kept = scaled >> shift;
                let half = (scaled >> (shift - 1)) & 1 == 1;
                let rest = scaled & ((1u128 << (shift - 1)) - 1) != 0;
                kept + u128::from(half && (rest || kept & 1 == 1))
            };
            let whole = (rounded / u128::from(E17)) as u64;
            let digits = itoa::Buffer::new().format(whole).as_bytes().to_vec();
            (digits, (rounded % u128::from(E17)) as u64)
        };
        let mut out = Vec::new();
        // `-0` prints as `0`; a negative value that shows any digit keeps its sign.
        if neg && !(integer == b"0" && fraction == 0) {
            out.push(b'-');
        }
        out.extend(integer);
        if fraction != 0 {
            let mut buf = itoa::Buffer::new();
            let digits = buf.format(fraction).as_bytes();
            out.push(b'.');
            out.resize(out.len() + 17 - digits.len(), b'0');
            out.extend_from_slice(digits);
            while out.last() == Some(&b'0') {
                out.pop();
            }
        }
        out
    }
}

/// 10^17: `%.17Lf` prints 17 digits after the point.
const E17: u64 = 100_000_000_000_000_000;

/// Rounds `±(sum + a little when sticky) × 2^exp` to the nearest extended value, ties to even.
fn round(neg: bool, sum: u128, exp: i64, sticky: bool) -> Ext {
    let len = i64::from(128 - sum.leading_zeros());
    let shift = (len - 64).max(MIN_EXP - exp);
    let (mut significand, mut exp) = if shift <= 0 {
        // Normalised: the top bit set unless the exponent is already the lowest, so a sum's
        // guard bits always lie below the rounding point.
        (sum << -shift, exp + shift)
    } else {
        let (kept, half, rest) = match u32::try_from(shift) {
            Ok(s) if s < 128 => (
                sum >> s,
                (sum >> (s - 1)) & 1 == 1,
                sum & ((1u128 << (s - 1)) - 1) != 0,
            ),
            Ok(128) => (0, sum >> 127 == 1, sum & (u128::MAX >> 1) != 0),
            _ => (0, false, true),
        };
        let up = half && (rest || sticky || kept & 1 == 1);
        (kept + u128::from(up), exp + shift)
    };
    if significand >> 64 != 0 {
        significand >>= 1;
        exp += 1;
    }
    let bits = i64::from(128 - significand.leading_zeros());
    if significand != 0 && exp + bits > MAX_BITS {
        return Ext::Inf { neg };
    }
    Ext::Finite {
        neg,
        significand: significand as u64,
        exp,
    }
}

/// The digits of a number as `strtold` reads them: an integer mantissa and the power of ten
/// (decimal) or two (hex) to scale it by.
struct Number;

impl Number {
    /// Reads `digits[.digits][e±n]` (or `[p±n]` in hex) filling the whole of `text`; `None`
    /// when anything is left over or no digit was read.
    fn read(text: &[u8], radix: u32) -> Option<(Big, i64, i64)> {
        let mut mantissa = Big::from_u64(0);
        let (mut seen, mut point, mut scale) = (false, false, 0i64);
        let mut i = 0;
        while let Some(&c) = text.get(i) {
            if c == b'.' && !point {
                point = true;
            } else if let Some(d) = char::from(c).to_digit(radix) {
                seen = true;
                // Leading zeros add nothing; a digit past the bound of any finite value is
                // still read (it decides rounding) but no number here gets that long.
                if !mantissa.is_zero() || d != 0 {
                    mantissa.mul_add(radix, d);
                }
                if point {
                    scale -= 1;
                }
            } else {
                break;
            }
            i += 1;
        }
        if !seen {
            return None;
        }
        let marker: &[u8] = if radix == 16 { b"pP" } else { b"eE" };
        let mut exponent = 0i64;
        if text.get(i).is_some_and(|c| marker.contains(c)) {
            let mut j = i + 1;
            let negative = text.get(j) == Some(&b'-');
            if matches!(text.get(j), Some(b'-' | b'+')) {
                j += 1;
            }
            let start = j;
            while let Some(d) = text.get(j).filter(|c| c.is_ascii_digit()) {
                // Saturates far beyond any exponent that is not an overflow or underflow.
                exponent = (exponent * 10 + i64::from(d - b'0')).min(1 << 40);
                j += 1;
            }
            // `e` without digits is left unread by strtold, so it is trailing garbage.
            if j == start {
                return None;
            }
            if negative {
                exponent = -exponent;
            }
            i = j;
        }
        if i != text.len() {
            return None;
        }
        Some(if radix == 16 {
            (mantissa, 0, exponent + 4 * scale)
        } else {
            (mantissa, exponent + scale, 0)
        })
    }
}

impl Big {
    /// `±self × 10^exp10 × 2^exp2`, correctly rounded; `None` when it overflows or a non-zero
    /// number rounds to zero (`strtold`'s ERANGE cases Redis rejects).
    fn value(mut self, neg: bool, exp10: i64, exp2: i64) -> Option<Ext> {
        if self.is_zero() {
            return Some(zero(neg));
        }
        // Out of range by a wide margin: no need to compute (and bound the work).
        let magnitude = self.bits() as i64 + exp2 + (exp10 * 3322) / 1000;
        if magnitude > MAX_BITS + 8 {
            return None;
        }
        if magnitude < MIN_EXP - 8 {
            return None;
        }
        let small = self
            .to_u128()
            .filter(|_| exp2 == 0 && (-18..=38).contains(&exp10));
        let power = 10u128.pow(exp10.unsigned_abs().min(38) as u32);
        let (quotient, exp, sticky) = if let Some(n) =
            small.and_then(|m| (exp10 >= 0).then(|| m.checked_mul(power)).flatten())
        {
            // What clients send (up to 38 digits, a short exponent) fits u128 arithmetic: an
            // exact product, or a quotient of at least 67 bits, enough to round.
            (n, 0, false)
        } else if let (Some(m), true) = (small, exp10 < 0) {
            let z = m.leading_zeros();
            let scaled = m << z;
            (scaled / power, -i64::from(z), scaled % power != 0)
        } else if exp10 >= 0 {
            self.mul_pow10(exp10);
            let (top, shift, sticky) = self.top128();
            (top, shift + exp2, sticky)
        } else {
            // self / 10^-exp10: a quotient of exactly 127 or 128 bits by long division.
            let mut divisor = Big::from_u64(1);
            divisor.mul_pow10(-exp10);
            let k = 127 - (self.bits() as i64 - divisor.bits() as i64);
            if k >= 0 {
                self.shl(k as usize);
            } else {
                divisor.shl((-k) as usize);
            }
            divisor.shl(127);
            let mut quotient = 0u128;
            for bit in (0..128).rev() {
                if self.cmp(&divisor) != Ordering::Less {
                    self.sub(&divisor);
                    quotient |= 1 << bit;
                }
                divisor.shr1();
            }
            (quotient, exp2 - k, !self.is_zero())
        };
        match round(neg, quotient, exp, sticky) {
            Ext::Finite { significand: 0, .. } | Ext::Inf { .. } => None,
            finite => Some(finite),
        }
    }
}

/// A non-negative big integer, 32-bit limbs, least significant first, no high zero limbs.
#[derive(Debug, Clone)]
struct Big(Vec<u32>);

impl Big {
    fn from_u64(n: u64) -> Big {
        let mut big = Big(vec![n as u32, (n >> 32) as u32]);
        big.trim();
        big
    }

    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    /// The value when it fits in 128 bits.
    fn to_u128(&self) -> Option<u128> {
        (self.0.len() <= 4).then(|| {
            self.0
                .iter()
                .rev()
                .fold(0u128, |n, &limb| n << 32 | u128::from(limb))
        })
    }

    fn is_zero(&self) -> bool {
        self.0.is_empty()
    }

    fn bits(&self) -> usize {
        self.0
            .last()
            .map_or(0, |top| self.0.len() * 32 - top.leading_zeros() as usize)
    }

    /// `self = self × m + a`.
    fn mul_add(&mut self, m: u32, a: u32) {
        let mut carry = u64::from(a);
        for limb in &mut self.0 {
            let v = u64::from(*limb) * u64::from(m) + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        if carry != 0 {
            self.0.push(carry as u32);
        }
    }

    /// `self = self × 10^n`, nine digits at a time.
    fn mul_pow10(&mut self, mut n: i64) {
        while n > 0 {
            let step = n.min(9);
            self.mul_add(10u32.pow(step as u32), 0);
            n -= step;
        }
    }

    fn shl(&mut self, bits: usize) {
        if self.is_zero() {
            return;
        }
        let (limbs, bits) = (bits / 32, bits % 32);
        if bits != 0 {
            let mut carry = 0;
            for limb in &mut self.0 {
                let v = (*limb << bits) | carry;
                carry = *limb >> (32 - bits);
                *limb = v;
            }
            if carry != 0 {
                self.0.push(carry);
            }
        }
        self.0.splice(0..0, std::iter::repeat_n(0, limbs));
    }

    fn shr1(&mut self) {
        let mut carry = 0;
        for limb in self.0.iter_mut().rev() {
            let v = (*limb >> 1) | carry;
            carry = *limb << 31;
            *limb = v;
        }
        self.trim();
    }

    fn cmp(&self, other: &Big) -> Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.iter().rev().cmp(other.0.iter().rev()))
    }

    /// `self -= other`; `other` is not larger.
    fn sub(&mut self, other: &Big) {
        let mut borrow = 0i64;
        for (i, limb) in self.0.iter_mut().enumerate() {
            let v = i64::from(*limb) - i64::from(other.0.get(i).copied().unwrap_or(0)) - borrow;
            borrow = i64::from(v < 0);
            *limb = v.rem_euclid(1 << 32) as u32;
        }
        self.trim();
    }

    /// The top 128 bits, the power of two they are scaled by, and whether any bit below them
    /// is set.
    fn top128(&self) -> (u128, i64, bool) {
        let drop = self.bits().saturating_sub(128);
        let mut top = 0u128;
        for bit in (drop..self.bits()).rev() {
            top = (top << 1) | u128::from(self.0[bit / 32] >> (bit % 32) & 1);
        }
        let sticky = (0..drop).any(|bit| self.0[bit / 32] >> (bit % 32) & 1 == 1);
        (top, drop as i64, sticky)
    }

    fn into_decimal(mut self) -> Vec<u8> {
        let mut chunks = Vec::new();
        while !self.is_zero() {
            let mut rem = 0u64;
            for limb in self.0.iter_mut().rev() {
                let v = (rem << 32) | u64::from(*limb);
                *limb = (v / 1_000_000_000) as u32;
                rem = v % 1_000_000_000;
            }
            self.trim();
            chunks.push(rem as u32);
        }
        let mut out = Vec::new();
        for (i, chunk) in chunks.iter().rev().enumerate() {
            let mut buf = itoa::Buffer::new();
            let text = buf.format(*chunk).as_bytes();
            if i > 0 {
                out.resize(out.len() + 9 - text.len(), b'0');
            }
            out.extend_from_slice(text);
        }
        if out.is_empty() {
            out.push(b'0');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::Ext;

    fn sum(a: &str, b: &str) -> Option<String> {
        let total = Ext::parse(a.as_bytes())?.add(Ext::parse(b.as_bytes())?)?;
        Some(String::from_utf8(total.to_text()).unwrap())
    }

    #[test]
    fn long_double_sums_print_as_redis_prints_them() {
        // Values redis-server 7.0.15 on x86-64 answers.
        assert_eq!(sum("0.1", "0.2").as_deref(), Some("0.3"));
        assert_eq!(sum("3e17", "1.5").as_deref(), Some("300000000000000001.5"));
        assert_eq!(sum("10.5", "0.1").as_deref(), Some("10.6"));
        assert_eq!(sum("5.0e3", "2.0e2").as_deref(), Some("5200"));
        assert_eq!(sum("0", "-1e-30").as_deref(), Some("0"));
        assert_eq!(sum("1", "-1").as_deref(), Some("0"));
        assert_eq!(sum("0x10", "0x1p-1").as_deref(), Some("16.5"));
        assert_eq!(sum("inf", "1"), Some("inf".into()));
        assert_eq!(sum("inf", "-inf"), None);
    }

    #[test]
    fn strtold_rejects_what_redis_rejects() {
        for bad in [
            "", " 1", "1 ", "1e", "abc", "nan", "1e5000", "1e-5000", "0x", "--1", "1..2",
        ] {
            assert_eq!(Ext::parse(bad.as_bytes()), None, "{bad:?}");
        }
        for good in [
            "1", "+1.", ".5", "1e-4940", "0e-99999", "INFINITY", "-Inf", "0x.8p1",
        ] {
            assert!(Ext::parse(good.as_bytes()).is_some(), "{good:?}");
        }
    }
}
