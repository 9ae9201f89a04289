// Package stats provides the statistics that turn CDN measurements into
// answers with error bars: how well clients reach the CDN, and whether a
// different steering would be better.
//
//   - Sketch: a mergeable quantile sketch (DDSketch, 1% relative
//     accuracy) for non-negative values such as connect time, TTFB and
//     throughput, with a binary encoding so hourly, per-site sketches can be
//     stored and merged later. Negative values are rejected.
//   - QuantileCI and MinSamples: distribution-free confidence intervals for
//     a quantile from order statistics and the exact binomial distribution.
//     Assumes i.i.d. observations; exact for continuous data, conservative
//     with ties.
//   - BootstrapCI, BootstrapMedianCI and WeightedQuantile: the Poisson
//     bootstrap (Poisson(1) weight per observation per replicate), which
//     works on streamed or merged data, with percentile intervals. Assumes
//     i.i.d. observations and a large enough n; percentile intervals of
//     medians under-cover at small n.
//   - PairedMedianDiffCI (exact, order statistics of the differences) and
//     BootstrapPairedMedianDiffCI: intervals for the median of per-client
//     differences a_i − b_i. Assumes independent pairs.
//   - ProportionCI: the Clopper–Pearson interval of a proportion (exact
//     binomial inversion, coverage ≥ level); assumes independent trials.
//   - SignTest, WilcoxonSignedRank and HodgesLehmann for paired data:
//     two-sided p-values, zero differences dropped. The sign test assumes
//     only independent pairs; Wilcoxon also assumes the differences are
//     symmetric under H0 (exact null distribution for n ≤ 50 without ties,
//     normal approximation with tie and continuity corrections otherwise).
//   - CUSUM and DetectChanges: online and offline detection of level shifts
//     in hourly series (two-sided CUSUM on log values standardized by the
//     median and the MAD-screened standard deviation of a trailing
//     baseline window, so thresholds are in units of the series' own
//     noise; re-baselined after each alarm). Assumes consecutive, roughly independent points with a stable
//     level between changes; defaults calibrated for hourly medians with
//     ~5% hour-to-hour coefficient of variation.
//
// Functions that draw random numbers take an explicit *rand.Rand
// (math/rand/v2) so that every analysis is reproducible from its seed.
package stats
