"""The five stages of the streaming analyser, each a class with feed() per step and finish().

Per step, in this order (`pipeline.Analyzer._step`):

    samples ─┬─> FrequencyStage          per-cycle and 10 s frequency; f_at(n) for refinement
             ├─> HalfCycleStage ──rows─> EventStage ──event flags─> AggregationStage
             │   (Urms(1/2))             (dips, swells, interruptions;   (10/12, 150/180 cycles,
             │                            refined timing, captures)       10 min)
             │                                                             │ 10/12-cycle group flags
             └─────────────────────────────────────────────────────> HarmonicsStage

`pipeline.Analyzer` normalises the input, cuts it into steps and wires the stages as drawn;
`grid` holds what they share (the half-cycle grid and the row flags), `history` the sample
history the event stage reads waveforms from. Every stage carries raw samples or exact sums
across steps, and asks other stages only about what is already settled, so how the recording
is cut never changes a result.
"""
