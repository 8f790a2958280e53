package dev.aura.bench;

import java.nio.file.Files;
import java.time.Duration;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;

import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Produced;

/**
 * A Kafka Streams copy application: every record of the input topic goes unchanged (key, value
 * and timestamp) to the output topic, nothing else. It is what a user would write instead of
 * Aura's stateless chain, minus the processing, so its latency is Kafka Streams' own floor.
 *
 * <p>Usage: {@code java -jar kstreams-passthrough.jar BOOTSTRAP INPUT OUTPUT APPLICATION_ID
 * COMMIT_INTERVAL_MS [name=value ...]}. The optional pairs are Kafka Streams (or client) settings
 * that override the defaults, e.g. {@code consumer.fetch.max.wait.ms=5}. The guarantee is always
 * exactly_once_v2, so its consumer reads read_committed.
 *
 * <p>Prints {@code state RUNNING} on stdout once it processes, which the bench waits for. SIGTERM
 * closes it cleanly (the last transaction commits).
 */
public final class Passthrough {
    public static void main(String[] args) throws Exception {
        if (args.length < 5) {
            System.err.println(
                    "usage: kstreams-passthrough BOOTSTRAP INPUT OUTPUT APPLICATION_ID COMMIT_INTERVAL_MS [name=value ...]");
            System.exit(2);
        }
        Properties config = new Properties();
        config.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        config.put(StreamsConfig.APPLICATION_ID_CONFIG, args[3]);
        config.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        config.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, args[4]);
        // A fresh state directory per run: a copy application has no stores, but Kafka Streams
        // still locks its task directories there.
        config.put(StreamsConfig.STATE_DIR_CONFIG,
                Files.createTempDirectory("kstreams-passthrough-").toString());
        for (int i = 5; i < args.length; i++) {
            String[] pair = args[i].split("=", 2);
            if (pair.length != 2) {
                System.err.println("not a name=value setting: " + args[i]);
                System.exit(2);
            }
            config.put(pair[0], pair[1]);
        }

        StreamsBuilder builder = new StreamsBuilder();
        builder.stream(args[1], Consumed.with(Serdes.ByteArray(), Serdes.ByteArray()))
                .to(args[2], Produced.with(Serdes.ByteArray(), Serdes.ByteArray()));

        KafkaStreams streams = new KafkaStreams(builder.build(), config);
        CountDownLatch stopped = new CountDownLatch(1);
        streams.setStateListener((now, before) -> {
            System.out.println("state " + now);
            System.out.flush();
            if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.NOT_RUNNING) {
                stopped.countDown();
            }
        });
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close(Duration.ofSeconds(10));
            stopped.countDown();
        }));
        streams.start();
        stopped.await();
        streams.close(Duration.ofSeconds(10));
        System.exit(streams.state() == KafkaStreams.State.ERROR ? 1 : 0);
    }
}
