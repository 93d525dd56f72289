use super::*;
use crate::runtime::eval::testdata::pairs;

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * b.abs().max(1.0)
}

#[test]
fn threshold_sweeps_by_hand() {
    // Scores 0.9 (1), 0.8 (0), 0.8 (1), 0.1 (0), higher = similar.
    // Accuracy: all-dissimilar gives 2/4; above 0.9 group: 1 TP + 2 TN =
    // 3/4 at threshold (0.9 + 0.8) / 2 = 0.85; the 0.8 group (tied,
    // evaluated once): 2 TP + 1 TN = 3/4, not better; everything: 2/4.
    let s = [0.9f32, 0.8, 0.8, 0.1];
    let l = [true, false, true, false];
    let (acc, t) = find_best_acc_and_threshold(&s, &l, true);
    assert_eq!(acc, 0.75);
    assert_eq!(t, 0.85f32 as f64);
    // F1: after the 0.9 group P = 1, R = 1/2, F1 = 2/3; after the 0.8
    // group P = 2/3, R = 1, F1 = 0.8 at the f32 midpoint (0.8 + 0.1) / 2,
    // which sentence-transformers reports as 0.45000002.
    let (f1, p, r, t) = find_best_f1_and_threshold(&s, &l, true);
    assert!(close(f1, 0.8, 1e-12) && close(p, 2.0 / 3.0, 1e-12) && r == 1.0);
    assert_eq!(t, ((0.8f32 + 0.1f32) / 2.0) as f64);
    assert_eq!(t as f32, 0.450_000_02f32);
    // All negatives: accuracy 1 with a threshold just above the top score
    // (numpy.nextafter(0.9, inf) in float32 = 0.90000004); F1 0.
    let (acc, t) = find_best_acc_and_threshold(&[0.9, 0.8], &[false, false], true);
    assert_eq!((acc, t as f32), (1.0, 0.9f32.next_up()));
    assert_eq!(
        find_best_f1_and_threshold(&[0.9, 0.8], &[false, false], true),
        (0.0, 0.0, 0.0, 0.0)
    );
    // Distances (lower = similar): 1.0 (1), 2.0 (0), 3.0 (1): best
    // accuracy 2/3 at the first boundary 1.5; F1: after 1.0, P 1 R 1/2
    // F1 2/3; after 3.0, P 2/3 R 1 F1 0.8 at threshold 3.0 (the last).
    let (acc, t) = find_best_acc_and_threshold(&[2.0, 1.0, 3.0], &[false, true, true], false);
    assert_eq!((acc, t), (2.0 / 3.0, 1.5));
    let (f1, _, _, t) = find_best_f1_and_threshold(&[2.0, 1.0, 3.0], &[false, true, true], false);
    assert!(close(f1, 0.8, 1e-12));
    assert_eq!(t, 3.0);
}

#[test]
fn average_precision_like_sklearn() {
    // sklearn: average_precision_score([1,0,1,0], [.5,.5,.2,.1]) = 0.58333:
    // tied group 0.5 -> P 1/2, R 1/2 (0.25); 0.2 -> P 2/3, R 1 (+1/3).
    let ap = average_precision(&[true, false, true, false], &[0.5, 0.5, 0.2, 0.1]);
    assert!(close(ap, 0.25 + 1.0 / 3.0, 1e-12), "{ap}");
    assert_eq!(average_precision(&[false, false], &[0.1, 0.2]), 0.0);
    assert_eq!(average_precision(&[true, true], &[0.1, 0.2]), 1.0);
}

#[test]
fn mcc_by_hand() {
    // TP 2, TN 1, FP 1, FN 0: (2*1 - 1*0) / sqrt(3 * 2 * 2 * 1) = 2 / sqrt(12).
    let m = matthews_corrcoef(&[true, true, false, false], &[true, true, true, false]);
    assert!(close(m, 2.0 / 12f64.sqrt(), 1e-12));
    assert_eq!(matthews_corrcoef(&[true, false], &[true, true]), 0.0);
}

#[test]
fn matches_sentence_transformers() -> Result<(), EvalError> {
    // BinaryClassificationEvaluator(similarity_fn_names=[cosine, dot,
    // euclidean, manhattan]) of sentence-transformers 6.2.0 on the same
    // float32 embeddings.
    let (e1, e2) = pairs();
    let labels: Vec<i64> = (0..12).map(|i| (i * 5 % 7) % 2).collect();
    let cfg = BinaryClassificationConfig {
        similarity_fn_names: Similarity::all(),
    };
    let m = binary_classification(&e1, &e2, &labels, &cfg)?;
    let expected: [(&str, f64); 40] = [
        ("cosine_accuracy", 0.75),
        ("cosine_accuracy_threshold", -0.35137057304382324),
        ("cosine_f1", 0.7692307692307692),
        ("cosine_f1_threshold", -0.35137057304382324),
        ("cosine_precision", 0.7142857142857143),
        ("cosine_recall", 0.8333333333333334),
        ("cosine_ap", 0.7794011544011543),
        ("cosine_mcc", 0.50709255283711),
        ("dot_accuracy", 0.75),
        ("dot_accuracy_threshold", -4.197432518005371),
        ("dot_f1", 0.8),
        ("dot_f1_threshold", -4.197432518005371),
        ("dot_precision", 0.6666666666666666),
        ("dot_recall", 1.0),
        ("dot_ap", 0.7438492063492063),
        ("dot_mcc", 0.5773502691896257),
        ("euclidean_accuracy", 0.75),
        ("euclidean_accuracy_threshold", 6.0362443923950195),
        ("euclidean_f1", 0.8),
        ("euclidean_f1_threshold", 6.0362443923950195),
        ("euclidean_precision", 0.6666666666666666),
        ("euclidean_recall", 1.0),
        ("euclidean_ap", 0.5494047619047618),
        ("euclidean_mcc", 0.5773502691896257),
        ("manhattan_accuracy", 0.75),
        ("manhattan_accuracy_threshold", 13.48600959777832),
        ("manhattan_f1", 0.8),
        ("manhattan_f1_threshold", 13.48600959777832),
        ("manhattan_precision", 0.6666666666666666),
        ("manhattan_recall", 1.0),
        ("manhattan_ap", 0.5327380952380951),
        ("manhattan_mcc", 0.5773502691896257),
        ("max_accuracy", 0.75),
        ("max_accuracy_threshold", 13.48600959777832),
        ("max_f1", 0.8),
        ("max_f1_threshold", 13.48600959777832),
        ("max_precision", 0.7142857142857143),
        ("max_recall", 1.0),
        ("max_ap", 0.7794011544011543),
        ("max_mcc", 0.5773502691896257),
    ];
    assert_eq!(m.entries.len(), expected.len());
    for ((name, got), (want_name, want)) in m.entries.iter().zip(expected) {
        assert_eq!(name, want_name);
        assert!(close(*got, want, 1e-6), "{name}: {got} vs {want}");
    }
    assert_eq!(m.primary, "max_ap");
    let single = binary_classification(&e1, &e2, &labels, &Default::default())?;
    assert_eq!(single.primary, "cosine_ap");
    assert_eq!(single.entries.len(), 8);
    Ok(())
}

#[test]
fn input_errors() {
    let e = vec![vec![1.0f32]; 2];
    let cfg = BinaryClassificationConfig::default();
    assert_eq!(
        binary_classification(&e, &e, &[0, 2], &cfg),
        Err(EvalError::NotBinary { index: 1, value: 2 })
    );
    assert!(binary_classification(&e, &e, &[0], &cfg).is_err());
}
