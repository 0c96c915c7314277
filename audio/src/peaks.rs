//! The waveform preview: a fixed number of peak values over the whole recording,
//! computed in one pass with bounded memory (the length is not known in advance).

/// How many peak values [`Converted::peaks`](crate::Converted) holds.
pub const PEAK_COUNT: usize = 100;

/// Bins kept while streaming; when full, neighbours merge and each bin covers twice as
/// many samples.
const MAX_BINS: usize = 1024;

/// Running peak meter.
#[derive(Debug)]
pub(crate) struct Peaks {
    bins: Vec<f32>,
    per_bin: u64,
    in_bin: u64,
    current: f32,
}

impl Peaks {
    pub(crate) fn new() -> Self {
        Peaks {
            bins: Vec::with_capacity(MAX_BINS),
            per_bin: 16,
            in_bin: 0,
            current: 0.0,
        }
    }

    /// Adds one (mono or already-combined) sample magnitude.
    #[inline]
    pub(crate) fn add(&mut self, magnitude: f32) {
        if magnitude > self.current {
            self.current = magnitude;
        }
        self.in_bin += 1;
        if self.in_bin == self.per_bin {
            self.close_bin();
        }
    }

    fn close_bin(&mut self) {
        self.bins.push(self.current);
        self.current = 0.0;
        self.in_bin = 0;
        if self.bins.len() == MAX_BINS {
            for i in 0..MAX_BINS / 2 {
                self.bins[i] = self.bins[2 * i].max(self.bins[2 * i + 1]);
            }
            self.bins.truncate(MAX_BINS / 2);
            self.per_bin *= 2;
        }
    }

    /// [`PEAK_COUNT`] values 0–255, scaled so the loudest peak is 255 (all zero for
    /// silence below −80 dBFS).
    pub(crate) fn finish(mut self) -> Vec<u8> {
        if self.in_bin > 0 {
            self.bins.push(self.current);
        }
        let m = self.bins.len();
        if m == 0 {
            return vec![0; PEAK_COUNT];
        }
        let grouped: Vec<f32> = (0..PEAK_COUNT)
            .map(|i| {
                let a = i * m / PEAK_COUNT;
                let b = ((i + 1) * m / PEAK_COUNT).max(a + 1).min(m);
                self.bins[a..b].iter().copied().fold(0.0, f32::max)
            })
            .collect();
        let loudest = grouped.iter().copied().fold(0.0, f32::max).min(1.0);
        if loudest < 1e-4 {
            return vec![0; PEAK_COUNT];
        }
        grouped
            .iter()
            .map(|&p| ((p.min(1.0) / loudest) * 255.0).round() as u8)
            .collect()
    }
}
