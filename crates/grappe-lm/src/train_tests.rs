use super::*;
use crate::{Stop, count_tokens};

/// A short French text, written for these tests.
const TEXT: &str = "\
Le salarié a droit chaque année à un congé payé à la charge de l'employeur.
Le congé payé est de deux jours et demi ouvrables par mois de travail effectif.
L'employeur verse au salarié un salaire au moins égal au salaire minimum.
La durée légale du travail effectif est fixée à trente-cinq heures par semaine.
Les heures supplémentaires donnent lieu à une majoration de salaire.
Le salarié peut se former tout au long de la vie professionnelle.
L'employeur assure la sécurité et protège la santé des travailleurs.
";

fn small() -> TrainConfig {
    TrainConfig { shape: Shape { context: 6, embedding: 16, hidden: 32 }, epochs: 3, ..TrainConfig::DEFAULT }
}

fn train(trainer: &Trainer, mut state: Checkpoint) -> Checkpoint {
    while trainer.step(&mut state).is_some() {}
    state
}

#[test]
fn the_default_model_has_74_273_parameters() {
    assert_eq!(Shape::DEFAULT.parameters(), 74_273);
    assert_eq!(Shape::DEFAULT.check(), Ok(()));
}

#[test]
fn loss_falls_over_epochs_on_a_french_text() {
    let trainer = Trainer::new(TrainConfig { epochs: 5, ..TrainConfig::DEFAULT }, TEXT).unwrap();
    assert_eq!(trainer.examples(), TEXT.len(), "every byte but the newlines, and one end per line");
    let state = train(&trainer, trainer.start());
    let losses = &state.losses;
    eprintln!("losses: {losses:?}");
    assert_eq!(losses.len(), 5);
    assert!(losses.windows(2).all(|pair| pair[1] < pair[0]), "{losses:?}");
    assert!(losses[0] < (VOCABULARY as f64).ln(), "{losses:?}");
    assert!(losses[4] < 0.75 * losses[0], "{losses:?}");
}

#[test]
fn greedy_generation_is_the_same_twice_and_sampling_follows_its_seed() {
    let trainer = Trainer::new(small(), TEXT).unwrap();
    let state = train(&trainer, trainer.start());
    let model = Model::from_bytes(&state.model().to_bytes()).unwrap();
    let text =
        |prompt, temperature, seed| -> String { model.generate(prompt, 60, temperature, seed).pieces().collect() };
    assert_eq!(text("Le salarié", 0.0, 1), text("Le salarié", 0.0, 2), "greedy ignores the seed");
    assert_eq!(text("Le salarié", 0.0, 1), text("Le salarié", 0.0, 1));
    assert_eq!(text("L'employeur", 1.0, 7), text("L'employeur", 1.0, 7));
    let draws: Vec<String> = (0..5).map(|seed| text("L'employeur", 1.0, seed)).collect();
    assert!(draws.iter().any(|draw| *draw != draws[0]), "{draws:?}");
}

#[test]
fn every_generation_is_whole_characters_counted_exactly() {
    // An untrained model at a high temperature writes any byte it may: multi-byte characters
    // are everywhere, and `max_tokens` often falls where one would not fit.
    let model = Trainer::new(small(), TEXT).unwrap().start().model().clone();
    for max_tokens in 0..40 {
        for seed in 0..5 {
            let mut generation = model.generate("Le congé ", max_tokens, 3.0, seed);
            let tokens: Vec<Token> = generation.by_ref().collect();
            let stopped = generation.stopped();
            let bytes: Vec<u8> = tokens.iter().map(|token| token.as_byte().expect("END is never yielded")).collect();
            let text = String::from_utf8(bytes).expect("valid UTF-8");
            assert_eq!(count_tokens(&text), tokens.len() as u64);
            assert!(tokens.len() as u32 <= max_tokens);
            if stopped == Some(Stop::Length) {
                assert!(max_tokens - tokens.len() as u32 <= 3, "stopped early only for a character that would not fit");
            } else {
                assert_eq!(stopped, Some(Stop::End));
            }
            let mut pieces = model.generate("Le congé ", max_tokens, 3.0, seed).pieces();
            let joined: Vec<String> = pieces.by_ref().collect();
            assert_eq!(joined.concat(), text);
            assert_eq!(joined.len(), text.chars().count(), "one piece per character");
            assert_eq!(pieces.stopped(), stopped);
        }
    }
    let tokens = model.generate("", 300, 0.0, 0).ignoring_end().count();
    assert!((297..=300).contains(&tokens), "{tokens}");
    assert_eq!(count_tokens(""), 0);
    assert_eq!(count_tokens("congé"), 6);
    assert_eq!(count_tokens("€"), 3);
    assert_eq!(crate::tokenize("é").collect::<Vec<_>>(), [Token::byte(0xC3), Token::byte(0xA9)]);
}

#[test]
fn a_run_stopped_and_resumed_from_its_checkpoint_ends_with_the_same_bytes() {
    let trainer = Trainer::new(small(), TEXT).unwrap();
    let whole = train(&trainer, trainer.start());
    let mut state = trainer.start();
    for _ in 0..TEXT.len().div_ceil(32) + 5 {
        trainer.step(&mut state);
    }
    assert_eq!((state.epoch, state.position), (1, 5 * 32));
    let bytes = state.to_bytes();
    // Another trainer, as a restarted process would have: nothing kept but the checkpoint.
    let restarted = Trainer::new(small(), TEXT).unwrap();
    let resumed = restarted.resume(Checkpoint::from_bytes(&bytes).unwrap()).unwrap();
    assert_eq!(resumed, state);
    let resumed = train(&restarted, resumed);
    assert_eq!(resumed.model().to_bytes(), whole.model().to_bytes());
    assert_eq!(resumed.to_bytes(), whole.to_bytes());
    assert_eq!(resumed.losses, whole.losses);
    let other = Trainer::new(TrainConfig { seed: 1, ..small() }, TEXT).unwrap();
    let other_seed = train(&other, other.start());
    assert_ne!(other_seed.model().to_bytes(), whole.model().to_bytes());
}

#[test]
fn a_damaged_model_file_or_checkpoint_is_refused() {
    let trainer = Trainer::new(small(), TEXT).unwrap();
    let mut state = trainer.start();
    trainer.step(&mut state);
    let model = state.model().to_bytes();
    assert_eq!(&Model::from_bytes(&model).unwrap(), state.model());
    for torn in [&model[..model.len() / 2], &model[..model.len() - 1]] {
        assert!(matches!(Model::from_bytes(torn), Err(DecodeError::Length { .. })));
    }
    let mut flipped = model.clone();
    flipped[model.len() / 2] ^= 1;
    assert!(matches!(Model::from_bytes(&flipped), Err(DecodeError::Hash)));
    let mut later = model.clone();
    later[8] = 2;
    assert!(matches!(Model::from_bytes(&later), Err(DecodeError::Version { found: 2, .. })));
    let checkpoint = state.to_bytes();
    assert!(matches!(Model::from_bytes(&checkpoint), Err(DecodeError::NotThisKind { .. })));
    assert!(matches!(Checkpoint::from_bytes(&model), Err(DecodeError::NotThisKind { .. })));
    assert_eq!(Checkpoint::from_bytes(&checkpoint).unwrap(), state);
    // Framed correctly, but of a shape its parameters do not fill, or with a NaN.
    let reframe =
        |shape: Shape, parameters: Vec<f32>| encode(b"GRPLMMOD", 1, |body| Model { shape, parameters }.write(body));
    let shape = small().shape;
    let short = reframe(shape, vec![0.0; shape.parameters() - 1]);
    assert!(matches!(Model::from_bytes(&short), Err(DecodeError::Malformed(_))));
    let mut nan = vec![0.0; shape.parameters()];
    nan[3] = f32::NAN;
    assert!(matches!(Model::from_bytes(&reframe(shape, nan)), Err(DecodeError::Malformed(_))));
    let huge = Shape { context: 64, embedding: 256, hidden: 4096 };
    assert!(matches!(Model::from_bytes(&reframe(huge, Vec::new())), Err(DecodeError::Malformed(_))));
}

#[test]
fn a_checkpoint_of_another_text_or_settings_is_refused() {
    let trainer = Trainer::new(small(), TEXT).unwrap();
    let state = trainer.start();
    let other_text = Trainer::new(small(), &TEXT[1..]).unwrap();
    assert!(matches!(other_text.resume(state.clone()), Err(TrainError::OtherRun)));
    let other_rate = Trainer::new(TrainConfig { learning_rate: 0.01, ..small() }, TEXT).unwrap();
    assert!(matches!(other_rate.resume(state.clone()), Err(TrainError::OtherRun)));
    let more_epochs = Trainer::new(TrainConfig { epochs: 9, ..small() }, TEXT).unwrap();
    assert!(more_epochs.resume(state).is_ok());
}

#[test]
fn bad_settings_and_empty_texts_are_refused() {
    for text in ["", "\n \n\t\n"] {
        assert!(matches!(Trainer::new(small(), text), Err(TrainError::Data(_))));
    }
    let configs = [
        TrainConfig { learning_rate: f32::NAN, ..small() },
        TrainConfig { batch: 0, ..small() },
        TrainConfig { shape: Shape { context: 0, ..Shape::DEFAULT }, ..small() },
        TrainConfig { shape: Shape { context: 64, embedding: 256, hidden: 4096 }, ..small() },
    ];
    for config in configs {
        assert!(matches!(Trainer::new(config, TEXT), Err(TrainError::Config(_))), "{config:?}");
    }
}

#[test]
fn fine_tuning_starts_from_the_base_and_the_base_is_part_of_the_run() {
    let base = train(&Trainer::new(small(), TEXT).unwrap(), Trainer::new(small(), TEXT).unwrap().start());
    let base = base.model().clone();
    let new_text = "Le salarié a droit à une pause de vingt minutes.\nL'employeur affiche les horaires.\n";
    let fresh = Trainer::new(small(), new_text).unwrap();
    let tuned = Trainer::new(small(), new_text).unwrap().with_base(base.clone()).unwrap();
    assert_eq!(tuned.start().model(), &base, "a fine-tuning run starts from the base's weights");
    let from_base = train(&tuned, tuned.start()).losses;
    let from_scratch = train(&fresh, fresh.start()).losses;
    assert!(from_base[0] < from_scratch[0], "the base already knows French: {from_base:?} {from_scratch:?}");
    let error = fresh.resume(tuned.start()).expect_err("a fine-tuning checkpoint resumes only its own run");
    assert!(matches!(error, TrainError::OtherRun), "{error}");
    let other_shape = TrainConfig { shape: Shape { context: 4, ..small().shape }, ..small() };
    assert!(Trainer::new(other_shape, new_text).unwrap().with_base(base).is_err(), "a base of another shape");
}
