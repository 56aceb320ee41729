package dev.poolgoaway.samples.drill;

import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Graphics2D;
import java.awt.Rectangle;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;

import javax.imageio.ImageIO;

import org.jfree.chart.ChartFactory;
import org.jfree.chart.JFreeChart;
import org.jfree.chart.plot.PlotOrientation;
import org.jfree.chart.plot.ValueMarker;
import org.jfree.chart.plot.XYPlot;
import org.jfree.chart.renderer.xy.XYStepRenderer;
import org.jfree.data.xy.XYSeries;
import org.jfree.data.xy.XYSeriesCollection;

import dev.poolgoaway.testkit.drill.DrillResult;
import dev.poolgoaway.testkit.drill.TimelinePoint;

/**
 * Draws drills' timelines one under the other into a PNG, with JFreeChart: connections per server over time, the
 * failed requests, and what the load needed (connections held plus borrowers waiting), which the two servers'
 * connections together must never fall below.
 */
final class TimelineChart {

    private static final int WIDTH = 1000;
    private static final int HEIGHT_PER_DRILL = 360;

    private TimelineChart() {
    }

    static void write(List<DrillResult> drills, String oldName, String newName, Path png) throws IOException {
        BufferedImage image = new BufferedImage(WIDTH, HEIGHT_PER_DRILL * drills.size(), BufferedImage.TYPE_INT_RGB);
        Graphics2D g = image.createGraphics();
        try {
            for (int i = 0; i < drills.size(); i++) {
                chart(drills.get(i), oldName, newName).draw(g,
                        new Rectangle(0, i * HEIGHT_PER_DRILL, WIDTH, HEIGHT_PER_DRILL));
            }
        } finally {
            g.dispose();
        }
        ImageIO.write(image, "png", png.toFile());
    }

    private static JFreeChart chart(DrillResult drill, String oldName, String newName) {
        XYSeries onOld = new XYSeries("connections on " + oldName + " (old)");
        XYSeries onNew = new XYSeries("connections on " + newName + " (new)");
        XYSeries failed = new XYSeries("failed requests (total)");
        XYSeries demand = new XYSeries("connections the load holds, plus borrowers waiting");
        for (TimelinePoint p : drill.timeline()) {
            double seconds = p.millis() / 1000.0;
            onOld.add(seconds, p.onOld());
            onNew.add(seconds, p.onNew());
            failed.add(seconds, p.failed());
            demand.add(seconds, p.inUse() + p.waiting());
        }
        XYSeriesCollection data = new XYSeriesCollection();
        data.addSeries(onOld);
        data.addSeries(onNew);
        data.addSeries(failed);
        data.addSeries(demand);
        JFreeChart chart = ChartFactory.createXYLineChart(title(drill), "seconds since the drill started",
                "connections / requests", data, PlotOrientation.VERTICAL, true, false, false);
        XYPlot plot = chart.getXYPlot();
        XYStepRenderer renderer = new XYStepRenderer();
        renderer.setSeriesPaint(0, new Color(0x1f, 0x5f, 0xbf));
        renderer.setSeriesPaint(1, new Color(0x2e, 0x9e, 0x44));
        renderer.setSeriesPaint(2, new Color(0xc8, 0x2a, 0x2a));
        renderer.setSeriesPaint(3, new Color(0xe0, 0x8a, 0x10));
        for (int s = 0; s < 3; s++) {
            renderer.setSeriesStroke(s, new BasicStroke(2.5f));
        }
        renderer.setSeriesStroke(3, new BasicStroke(1.2f));
        plot.setRenderer(renderer);
        plot.setBackgroundPaint(Color.WHITE);
        plot.setDomainGridlinePaint(Color.LIGHT_GRAY);
        plot.setRangeGridlinePaint(Color.LIGHT_GRAY);
        ValueMarker switchover = new ValueMarker(drill.before().toMillis() / 1000.0);
        switchover.setPaint(Color.DARK_GRAY);
        switchover.setStroke(new BasicStroke(1.5f, BasicStroke.CAP_BUTT, BasicStroke.JOIN_MITER, 10f,
                new float[] {6f, 4f}, 0f));
        switchover.setLabel("switchover");
        plot.addDomainMarker(switchover);
        return chart;
    }

    private static String title(DrillResult drill) {
        String outcome = drill.drainTime()
                .map(d -> String.format(Locale.ROOT, "drained in %d ms", d.toMillis()))
                .orElse(String.format(Locale.ROOT, "not drained: %d of %d connections still on the old server after "
                        + "%d s", drill.stillOnOld(), drill.oldAtSwitchover(), drill.observed().toSeconds()));
        return String.format(Locale.ROOT, "%s: %s, %d failed requests of %,d", drill.label(), outcome,
                drill.failedRequests(), drill.requests());
    }
}
