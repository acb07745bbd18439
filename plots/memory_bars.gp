# memory_bars.gp - memory of each method variant of one model, in MiB: the
# weights as stored (memory.weight_bytes of its records) and the peak
# resident set size of the process (memory.peak_rss_bytes, the largest over
# its records).
#
# A template: `slimbench plot` replaces each @NAME@ below and writes the
# result as OUTDIR/<plot>.gp beside its data file.  Placeholders:
#   @TERMINAL@  a "set terminal" line   @OUTPUT@  the image file
#   @DATA@      the data file: a header line of column titles, then one line
#               per method variant: "label"  weight_MiB  peak_rss_MiB (NaN: none)
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

plot for [c=2:@LAST_COLUMN@] '@DATA@' using c:xtic(1) title columnheader(c)
