/*
 * counterslave: a libmodbus RTU slave whose values move with the clock,
 * so a test can tell a fresh reply from a stale one.
 *
 *   counterslave TTY UNIT BASE_MS TICK_MS
 *
 * TICK_MS milliseconds after the Unix time BASE_MS the counter is 1, after
 * two ticks 2, and so on. The counter does not restart with the process:
 * kill the slave and start it again with the same BASE_MS and it carries
 * on, like a device whose counter lives in its own battery-backed memory.
 * Every reply is built from the clock at the moment the request is
 * served:
 *
 *   holding 0   counter (low 16 bits)
 *   holding 10  gate state: 0 closed, 1 open, toggling every 10 ticks
 *   input 0     counter again (function 04: same shape, other code)
 *   coils 0-15  the counter's bits (function 01: other code, other length)
 *
 * Like libmodbus's own unit-test-server it does not flush its port at
 * start: requests that reached the pty while it was down are served as
 * soon as it runs, which is what a restarted slave on a socat pair does.
 * Built by drivers/modbus's tests with
 *   gcc -o counterslave counterslave.c $(pkg-config --cflags --libs libmodbus)
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <modbus.h>

static uint32_t counter(long long base_ms, long tick_ms)
{
    struct timespec ts;
    long long now_ms;

    clock_gettime(CLOCK_REALTIME, &ts);
    now_ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    if (now_ms < base_ms) {
        return 0;
    }
    return (uint32_t)((now_ms - base_ms) / tick_ms);
}

int main(int argc, char *argv[])
{
    modbus_t *ctx;
    modbus_mapping_t *map;
    uint8_t query[MODBUS_RTU_MAX_ADU_LENGTH];
    long long base_ms;
    long tick_ms;
    int unit, rc, i;

    if (argc != 5) {
        fprintf(stderr, "usage: %s TTY UNIT BASE_MS TICK_MS\n", argv[0]);
        return 2;
    }
    /* The test reads the output after a SIGKILL: keep nothing buffered. */
    setvbuf(stdout, NULL, _IONBF, 0);
    unit = atoi(argv[2]);
    base_ms = atoll(argv[3]);
    tick_ms = atol(argv[4]);
    if (unit < 1 || unit > 247 || tick_ms < 1) {
        fprintf(stderr, "bad unit or tick\n");
        return 2;
    }

    ctx = modbus_new_rtu(argv[1], 115200, 'N', 8, 1);
    if (ctx == NULL) {
        fprintf(stderr, "modbus_new_rtu: %s\n", modbus_strerror(errno));
        return 1;
    }
    modbus_set_slave(ctx, unit);
    modbus_set_debug(ctx, getenv("COUNTERSLAVE_DEBUG") != NULL);
    map = modbus_mapping_new(16, 16, 16, 16);
    if (map == NULL) {
        fprintf(stderr, "modbus_mapping_new: %s\n", modbus_strerror(errno));
        return 1;
    }
    if (modbus_connect(ctx) == -1) {
        fprintf(stderr, "modbus_connect %s: %s\n", argv[1], modbus_strerror(errno));
        return 1;
    }
    printf("serving unit %d on %s\n", unit, argv[1]);
    fflush(stdout);

    for (;;) {
        uint32_t c;

        rc = modbus_receive(ctx, query);
        if (rc == 0) {
            continue; /* a request for another unit */
        }
        if (rc == -1) {
            if (errno == EMBBADCRC) {
                continue;
            }
            fprintf(stderr, "modbus_receive: %s\n", modbus_strerror(errno));
            break;
        }
        c = counter(base_ms, tick_ms);
        map->tab_registers[0] = (uint16_t)c;
        map->tab_registers[10] = (c / 10) % 2;
        map->tab_input_registers[0] = (uint16_t)c;
        for (i = 0; i < 16; i++) {
            map->tab_bits[i] = (c >> i) & 1;
        }
        if (modbus_reply(ctx, query, rc, map) == -1) {
            fprintf(stderr, "modbus_reply: %s\n", modbus_strerror(errno));
            break;
        }
    }
    modbus_mapping_free(map);
    modbus_close(ctx);
    modbus_free(ctx);
    return 1;
}
