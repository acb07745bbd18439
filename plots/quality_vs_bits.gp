# quality_vs_bits.gp - one quality metric (perplexity, accuracy, ...) of one
# model against its effective bits per weight, one point per method variant.
#
# A template: `slimbench plot` replaces each @NAME@ below and writes the
# result as OUTDIR/<plot>.gp beside its data file, so `gnuplot <plot>.gp`
# (run from OUTDIR) redraws it.  Placeholders:
#   @TERMINAL@  a "set terminal" line (PNG: pngcairo when built in, else png; or SVG)
#   @OUTPUT@    the image file          @DATA@    the data file (.dat)
#   @TITLE@ @XLABEL@ @YLABEL@           text, already escaped for '...' strings
#   @DENSE@     the dense model's value, or NaN when the results have none
#
# The data file holds two blocks (see its header comment):
#   index 0: every method variant: bits  value  stderr  on_front  "label"
#   index 1: the Pareto front (the non-dominated variants), sorted by bits

@TERMINAL@
set output '@OUTPUT@'

set title '@TITLE@'
set xlabel '@XLABEL@'
set ylabel '@YLABEL@'
set grid
set key outside top center horizontal

# An explicit x range, so that the dense line spans the whole plot: a little
# room on the left, more on the right for the point labels.
stats '@DATA@' index 0 using 1 nooutput
span = (STATS_max > STATS_min) ? STATS_max - STATS_min : 1
set xrange [STATS_min - 0.05 * span : STATS_max + 0.35 * span]
set offsets 0, 0, graph 0.08, graph 0.08

# NaN never equals itself: the reference line is drawn only when there is a dense run.
dense = @DENSE@
has_dense = (dense == dense)

plot '@DATA@' index 0 using 1:2:3 with yerrorbars pointtype 7 pointsize 1.2 linecolor rgb '#1f77b4' \
         title 'method variants (+/- stderr)', \
     '' index 0 using 1:2:5 with labels offset character 1,0.6 left notitle, \
     '' index 1 using 1:2 with lines linewidth 2 linecolor rgb '#d62728' title 'Pareto front', \
     (has_dense ? dense : 1/0) with lines dashtype 2 linewidth 1.5 linecolor rgb 'black' \
         title (has_dense ? 'dense (uncompressed)' : '')
