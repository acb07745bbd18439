# retention_bars.gp - accuracy retention of each method variant of one model
# against its dense (uncompressed) run, in percent, one bar per quality metric.
# 100 % means "as good as dense": value/dense*100 for higher-is-better
# metrics, dense/value*100 for lower-is-better ones (as `slimbench report
# --relative-to dense` computes it).
#
# A template: `slimbench plot` replaces each @NAME@ below and writes the
# result as OUTDIR/<plot>.gp beside its data file.  Placeholders:
#   @TERMINAL@  a "set terminal" line   @OUTPUT@  the image file
#   @DATA@      the data file: a header line of column titles, then one line
#               per method variant: "label"  value_1 ... value_n (NaN: none)
#   @LAST_COLUMN@  the number of the data file's last column
#   @TITLE@ @XLABEL@ @YLABEL@  text, already escaped for '...' strings

@TERMINAL@
set output '@OUTPUT@'

set title '@TITLE@'
set xlabel '@XLABEL@'
set ylabel '@YLABEL@'
set grid ytics
set key outside top center horizontal
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set xtics rotate by -25 left nomirror
set yrange [0:*]
set offsets 0, 0, graph 0.08, 0

plot for [c=2:@LAST_COLUMN@] '@DATA@' using c:xtic(1) title columnheader(c), \
     100 with lines dashtype 2 linewidth 1.5 linecolor rgb 'black' title 'dense = 100 %'
