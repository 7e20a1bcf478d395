// A plain Apache Curator x-discovery client, run by the discovery tests
// (java CuratorInterop.java, with Debian's libcurator-discovery-java on the
// class path) to check zkprom against the real library both ways:
//
//   query CONNECT BASE SERVICE          print each instance; exit 1 if Curator throws
//   register CONNECT BASE SERVICE ID ADDRESS PORT [key=value...]
//                                       register one instance with a Map payload,
//                                       print "registered", hold it until stdin closes
import java.util.LinkedHashMap;
import java.util.Map;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.retry.RetryOneTime;
import org.apache.curator.x.discovery.ServiceDiscovery;
import org.apache.curator.x.discovery.ServiceDiscoveryBuilder;
import org.apache.curator.x.discovery.ServiceInstance;

public class CuratorInterop {
    public static void main(String[] args) throws Exception {
        CuratorFramework client = CuratorFrameworkFactory.newClient(args[1], 10000, 10000, new RetryOneTime(500));
        client.start();
        client.blockUntilConnected();
        @SuppressWarnings({"rawtypes", "unchecked"})
        ServiceDiscovery<Map> sd = ServiceDiscoveryBuilder.builder(Map.class).client(client).basePath(args[2]).build();
        sd.start();
        try {
            if (args[0].equals("query")) {
                for (ServiceInstance<Map> i : sd.queryForInstances(args[3])) {
                    System.out.println("instance id=" + i.getId() + " address=" + i.getAddress() + " port=" + i.getPort() + " payload=" + i.getPayload());
                }
                return;
            }
            Map<String, Object> payload = new LinkedHashMap<>();
            for (int k = 7; k < args.length; k++) {
                String[] kv = args[k].split("=", 2);
                payload.put(kv[0], kv[1]);
            }
            @SuppressWarnings({"rawtypes", "unchecked"})
            ServiceInstance<Map> inst = (ServiceInstance<Map>) (ServiceInstance) ServiceInstance.builder()
                .name(args[3]).id(args[4]).address(args[5]).port(Integer.parseInt(args[6])).payload(payload).build();
            sd.registerService(inst);
            System.out.println("registered");
            System.out.flush();
            while (System.in.read() >= 0) {
            }
        } catch (Exception e) {
            e.printStackTrace();
            System.exit(1);
        } finally {
            sd.close();
            client.close();
        }
    }
}
