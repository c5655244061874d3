"""The five stages of the streaming analyser, each a class with feed() per step and finish().

    samples ──> HalfCycleStage ──rows──> EventStage ──event flags──> AggregationStage
       │          (Urms(1/2))              │ (dips, swells,              │ (10/12 cycles,
       │                                   │  interruptions, refined     │  150/180 cycles, 10 min)
       │                                   │  timing, captures)          │ flags of 10/12-cycle groups
       ├──> FrequencyStage ──f_recent──────┘                             v
       └──────────────────────────────────────────────────────────> HarmonicsStage

`pipeline.Analyzer` normalises the input, cuts it into steps and wires the stages as drawn;
`grid` holds what they share (the half-cycle grid and the row flags), `history` the sample
history the event stage reads waveforms from. Every stage carries raw samples or exact sums
across steps, so how the recording is cut never changes a result.
"""
