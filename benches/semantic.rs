//! Semantic engine benches: features, both diagram distances (16, 64 and 256 points), matching against 10
//! patterns, routing cached and uncached, and `Engine::assess` end to end on 64-point diagrams.
//! Every bench reports `Throughput::Elements` (diagrams, distance pairs, matches, routes or anomalies).

use std::hint::black_box;

use aura::model::{PersistencePoint, TdaAnomaly};
use aura::semantic::archetypes::scenario;
use aura::semantic::bottleneck::bottleneck;
use aura::semantic::config::{FeatureConfig, MatcherConfig, RoutingConfig};
use aura::semantic::diagram::clean;
use aura::semantic::embedding::embed;
use aura::semantic::features::Features;
use aura::semantic::matcher::Compiled;
use aura::semantic::routing::{RouteInputs, Router};
use aura::semantic::sliced_wasserstein::{distance_projected, SlicedWasserstein};
use aura::semantic::{Engine, PatternLibrary, SemanticConfig};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const SIZES: [usize; 3] = [16, 64, 256];

/// A diagram of exactly `n` points: one essential component, then H0, H1 and H2 bars in a 2:1:1 mix.
fn diagram(n: usize, rng: &mut SmallRng) -> Vec<PersistencePoint> {
    let mut d = vec![PersistencePoint {
        dimension: 0,
        birth: 0.0,
        death: f64::INFINITY,
    }];
    while d.len() < n {
        let dimension = [0, 0, 1, 2][rng.random_range(0..4)];
        let birth = if dimension == 0 {
            0.0
        } else {
            rng.random_range(0.0..1.0)
        };
        d.push(PersistencePoint {
            dimension,
            birth,
            death: birth + rng.random_range(0.001..1.0),
        });
    }
    d
}

/// The shipped 8 patterns plus two renamed copies: 10 patterns.
fn ten_patterns() -> PatternLibrary {
    let mut lib = PatternLibrary::builtin();
    for i in [0, 3] {
        let mut p = lib.patterns[i].clone();
        p.name.push_str("-variant");
        lib.patterns.push(p);
    }
    assert_eq!(lib.patterns.len(), 10);
    lib
}

/// Generated anomalies padded (with near-diagonal noise) or cut to exactly 64 points.
fn anomalies_64(count: usize) -> Vec<TdaAnomaly> {
    let mut rng = SmallRng::seed_from_u64(5);
    scenario("mixed", 9, 0.5)
        .unwrap()
        .take(count)
        .map(|ex| {
            let mut a = ex.anomaly;
            a.diagram.truncate(64);
            while a.diagram.len() < 64 {
                let b = rng.random_range(0.0..1.0);
                a.diagram.push(PersistencePoint {
                    dimension: 1,
                    birth: b,
                    death: b + rng.random_range(0.001..0.03),
                });
            }
            a
        })
        .collect()
}

fn features(c: &mut Criterion) {
    let mut g = c.benchmark_group("semantic/features");
    let mut rng = SmallRng::seed_from_u64(1);
    let cfg = FeatureConfig::default();
    for n in SIZES {
        let d = diagram(n, &mut rng);
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::new("features", n), &d, |b, d| {
            b.iter(|| Features::compute(&clean(black_box(d)), &[1, 1], &cfg))
        });
        g.bench_with_input(BenchmarkId::new("embedding", n), &d, |b, d| {
            b.iter(|| embed(&clean(black_box(d))))
        });
    }
    g.finish();
}

fn distances(c: &mut Criterion) {
    let mut g = c.benchmark_group("semantic/distance");
    let mut rng = SmallRng::seed_from_u64(2);
    let sw = SlicedWasserstein::new(16);
    for n in SIZES {
        let (a, b) = (diagram(n, &mut rng), diagram(n, &mut rng));
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(
            BenchmarkId::new("sliced_wasserstein_16dir", n),
            &n,
            |bch, _| bch.iter(|| sw.distance(black_box(&a), black_box(&b))),
        );
        let (pa, pb) = (sw.project(&a), sw.project(&b));
        g.bench_with_input(
            BenchmarkId::new("sliced_wasserstein_16dir_preprojected", n),
            &n,
            |bch, _| bch.iter(|| distance_projected(black_box(&pa), black_box(&pb))),
        );
        if n == 256 {
            g.sample_size(10);
        }
        g.bench_with_input(BenchmarkId::new("bottleneck_exact", n), &n, |bch, _| {
            bch.iter(|| bottleneck(black_box(&a), black_box(&b)))
        });
    }
    g.finish();
}

fn matching(c: &mut Criterion) {
    let mut g = c.benchmark_group("semantic/matching");
    let compiled = Compiled::new(ten_patterns());
    let cfg = MatcherConfig::default();
    let anomalies = anomalies_64(256);
    g.throughput(Throughput::Elements(anomalies.len() as u64));
    g.bench_function("embed_and_match_64pt_10_patterns", |b| {
        b.iter(|| {
            for a in &anomalies {
                black_box(compiled.match_embedding(
                    &embed(&clean(&a.diagram)),
                    &a.tags,
                    None,
                    &cfg,
                ));
            }
        })
    });
    g.finish();
}

fn routing(c: &mut Criterion) {
    let mut g = c.benchmark_group("semantic/routing");
    let lib = ten_patterns();
    let router = Router::new(RoutingConfig::default());
    let inputs = RouteInputs {
        pattern: Some((2, &lib.patterns[2])),
        confidence: 0.9,
        urgency: 0.5,
        base_urgency: 0.5,
        complexity: 0.4,
        entities: 1,
        source: "svc-1",
    };
    g.throughput(Throughput::Elements(1));
    router.route(&inputs, 1);
    g.bench_function("cached", |b| {
        b.iter(|| black_box(router.route(black_box(&inputs), 1)))
    });
    // Uncached: every decision is recomputed because each iteration bumps the library version in the key.
    let mut version = 1;
    g.bench_function("uncached", |b| {
        b.iter(|| {
            version += 1;
            black_box(router.route(black_box(&inputs), version))
        })
    });
    g.finish();
}

fn engine(c: &mut Criterion) {
    let mut g = c.benchmark_group("semantic/engine");
    let engine = Engine::new(SemanticConfig::default(), ten_patterns());
    let anomalies = anomalies_64(1024);
    g.throughput(Throughput::Elements(anomalies.len() as u64));
    g.bench_function("assess_64pt_10_patterns", |b| {
        b.iter(|| {
            for a in &anomalies {
                black_box(engine.assess(a, None, a.detected_at + 1_000));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, features, distances, matching, routing, engine);
criterion_main!(benches);
